"""Plugins: protocols, backends and dataset loaders found through the "swarmrank" entry-point group.

The suite's own plugin (tests/plugin, installed by scripts/setup) is a real installed distribution;
it registers its protocol, backend and loader only under SWARMRANK_TEST_PLUGIN=1, so these tests
run the CLI in a subprocess with and without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from swarmrank import plugins
from swarmrank.protocols import Protocol

ADDERS = """
[[nodes]]
id = "adder1"
backend = "adder"
roles = ["answer"]
[[nodes]]
id = "adder2"
backend = "adder"
roles = ["answer"]
"""


def swarmrank(*args: str, home: Path, plugin: bool, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SWARMRANK_HOME": str(home), "COLUMNS": "200"}
    env.pop("SWARMRANK_DB", None)
    env.pop("SWARMRANK_TEST_PLUGIN", None)
    if plugin:
        env["SWARMRANK_TEST_PLUGIN"] = "1"
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=120)


def test_the_test_plugin_is_installed_under_the_swarmrank_entry_point_group():
    found = {ep.name: ep.value for ep in entry_points(group=plugins.ENTRY_POINT_GROUP)}
    assert found.get("test_plugin") == "swarmrank_test_plugin"


def test_a_plugin_protocol_is_listed_after_the_built_ins_only_when_the_plugin_registers_it(isolated_home):
    on = swarmrank("-m", "swarmrank", "protocols", home=isolated_home, plugin=True)
    off = swarmrank("-m", "swarmrank", "protocols", home=isolated_home, plugin=False)
    assert on.returncode == off.returncode == 0, on.stderr + off.stderr
    names = [line.split("│")[1].strip() for line in on.stdout.splitlines() if line.startswith("│ ") and
             line.split("│")[1].strip()]
    assert names == ["peer-rank", "majority", "weighted-vote", "ahead-by-k", "council", "debate", "blender",
                     "synthesis", "moa", "llm-council", "first-answer"]
    assert "first-answer" not in off.stdout


def test_a_plugin_backend_and_protocol_answer_a_round_through_the_cli(isolated_home, tmp_path):
    config = tmp_path / "adders.toml"
    config.write_text(ADDERS)
    proc = swarmrank("-m", "swarmrank", "ask", "What is 19 + 23?", "--protocol", "first-answer", "--config",
                     str(config), "--no-save", "--json", home=isolated_home, plugin=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["protocol"], result["answer"], result["candidates"][0]["nodes"]) == ("first-answer", "42",
                                                                                       ["adder1", "adder2"])
    unknown = swarmrank("-m", "swarmrank", "ask", "What is 19 + 23?", "--config", str(config), "--no-save",
                        home=isolated_home, plugin=False)
    assert unknown.returncode == 1 and "error: unknown backend 'adder' (known: " in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_a_plugin_dataset_loader_is_reached_by_its_spec_prefix(isolated_home):
    code = "from swarmrank.eval.datasets import load; print([i.gold for i in load('sums:3')])"
    proc = swarmrank("-c", code, home=isolated_home, plugin=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['0', '2', '4']"


def test_a_plugin_that_fails_to_import_is_a_one_line_error(isolated_home, tmp_path):
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[swarmrank]\nbroken = broken_swarmrank_plugin\n")
    (tmp_path / "broken_swarmrank_plugin.py").write_text("raise ImportError('needs a library that is not here')\n")
    proc = swarmrank("-m", "swarmrank", "protocols", home=isolated_home, plugin=False, extra_path=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("error: the swarmrank plugin 'broken' (broken_swarmrank_plugin) failed to load: "
                                   "ImportError: needs a library that is not here")


def test_the_built_ins_are_plugins_registered_through_the_same_hooks():
    manager = plugins.plugin_manager()
    registered = {name for name, _ in manager.list_name_plugin()}
    assert set(plugins.BUILTIN_PLUGINS) <= registered
    protocols: list[Protocol] = []
    backends: list[str] = []
    loaders: list[str] = []
    manager.hook.register_protocols(register=protocols.append)
    manager.hook.register_backends(register=lambda name, factory: backends.append(name))
    manager.hook.register_dataset_loaders(register=lambda name, loader: loaders.append(name))
    assert [p.name for p in protocols][:7] == ["peer-rank", "majority", "weighted-vote", "ahead-by-k", "council",
                                               "debate", "blender"]
    assert {"llamacpp", "openai", "scripted", "remote"} <= set(backends)
    assert {"rg", "bb", "he", "tqa"} <= set(loaders)


def test_importing_the_built_in_plugins_registers_nothing_until_something_is_looked_up():
    imports = ", ".join(plugins.BUILTIN_PLUGINS)
    code = (f"import {imports}; import swarmrank.protocols as p, swarmrank.nodes.base as b, "
            "swarmrank.eval.datasets as d; print(len(p._PROTOCOLS), len(b._BACKENDS), len(d._LOADERS)); "
            "p.protocol_names(); print(len(p._PROTOCOLS), len(b._BACKENDS), len(d._LOADERS))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "0", "0", "10", "0", "0"]  # each registry fills on its first use
