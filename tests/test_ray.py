"""The ray executor: nodes as Ray actors give the same rounds as in process.

One real local Ray cluster per module (``ray start --head --block`` in a subprocess, on loopback,
2 CPUs, its own temp dir), joined once with ``ray.init``; every executor in this process then uses
that connection. Tests that need the cluster skip only when Ray is not installed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from swarmrank.config import ExecutorSection, SwarmConfig, load_config, parse_config
from swarmrank.errors import ConfigError, NodeError
from swarmrank.eval.runner import run_eval
from swarmrank.eval.store import EvalRuns
from swarmrank.executor import RayBackend, with_executor
from swarmrank.nodes.base import CompletionRequest, Message
from swarmrank.protocols import protocol_names
from swarmrank.result import RoundResult
from swarmrank.store import Store
from swarmrank.swarm import Swarm

from helpers import EvalTestItem

NO_RAY = "Ray is not installed (pip install 'swarmrank[ray]')"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_command() -> list[str]:
    script = Path(sys.executable).with_name("ray")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A throwaway local Ray cluster; yields its address (host:port)."""
    with pytest.MonkeyPatch.context() as env:
        # token auth with a token of our own: this process, the cluster and CLI subprocesses share it
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")
        env.setenv("RAY_AUTH_MODE", "token")
        env.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
        env.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
        env.delenv("RAY_ADDRESS", raising=False)
        yield from _cluster()


def _cluster() -> Iterator[str]:
    ray = pytest.importorskip("ray", reason=NO_RAY)
    try:
        from ray._raylet import Config

        Config.initialize("")  # Ray reads RAY_AUTH_* at import: read them again if it was imported before
    except (ImportError, AttributeError):
        pass
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="srray-")  # short: Ray's unix sockets live under it
    log = open(Path(temp) / "ray-start.log", "w")
    start = time.monotonic()
    # --block: the command stays in the foreground and stops the Ray processes it started on SIGTERM
    proc = subprocess.Popen([*_ray_command(), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                             "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
                             f"--temp-dir={temp}", "--block"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"ray start exited with {proc.returncode}: {(Path(temp) / 'ray-start.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() - start > 60:
                    pytest.fail("the Ray head did not open its port within 60 s")
                time.sleep(0.2)
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        print(f"\nray cluster up in {time.monotonic() - start:.1f}s", file=sys.stderr)
        yield address
    finally:
        ray.shutdown()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
        try:  # anything the head left behind in its own process group (ours alone)
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


# -- a scripted swarm that exercises every path: shared models, faults, every judge rule ------------

SCRIPTED: dict[str, Any] = {
    "swarm": {"name": "ray-test"},
    "round": {"k": 2, "max_samples": 6, "rounds": 1, "judges_per_pair": 2},
    "models": {
        "judge": {"backend": "scripted", "judge": "truth"},
        "noisy": {"backend": "scripted", "accuracy": 0.6, "wrong": "40", "revise": "majority"},
    },
    "nodes": [
        {"id": "right", "backend": "scripted", "answer": "42", "confidence": 0.9, "roles": ["answer"], "seed": 1},
        {"id": "wrong", "backend": "scripted", "answer": "41", "revise": "majority", "roles": ["answer"], "seed": 2},
        {"id": "noisy-a", "model": "noisy", "roles": ["answer"], "seed": 3},
        {"id": "noisy-b", "model": "noisy", "roles": ["answer"], "seed": 4},
        {"id": "crashes", "backend": "scripted", "fault": "crash", "fault_on": ["answer"], "roles": ["answer"]},
        {"id": "judge-a", "model": "judge", "roles": ["judge"], "seed": 5},
        {"id": "judge-b", "model": "judge", "roles": ["judge"], "seed": 6},
        {"id": "coin", "backend": "scripted", "judge": "random", "roles": ["judge"], "seed": 7},
        {"id": "biased", "backend": "scripted", "judge": "first", "roles": ["answer", "judge"], "answer": "40"},
    ],
}


def scripted(executor: dict[str, Any] | None = None, **changes: Any) -> SwarmConfig:
    data = {**SCRIPTED, **changes}
    if executor is not None:
        data["executor"] = executor
    return parse_config(data, "test config")


def trace(result: RoundResult) -> dict[str, Any]:
    """Everything in a round except its id, its time and how long things took."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("seconds", "wall_seconds")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(result.model_dump(mode="json", exclude={"round_id", "created_at"}))


def on_ray(cluster: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "ray", "address": cluster, **extra}


def only(*ids: str) -> list[dict[str, Any]]:
    return [n for n in SCRIPTED["nodes"] if n["id"] in ids]


async def test_every_protocol_gives_the_same_round_on_ray_as_in_process(cluster):
    local = Swarm.from_config(scripted(), store=None)
    ray_swarm = Swarm.from_config(scripted(on_ray(cluster)), store=None)
    assert all(isinstance(n.backend, RayBackend) for n in ray_swarm.nodes)
    try:
        for protocol in protocol_names():
            expected = await local.ask("What is 6 x 7?", protocol=protocol, truth="42", save=False)
            got = await ray_swarm.ask("What is 6 x 7?", protocol=protocol, truth="42", save=False)
            assert trace(got) == trace(expected), protocol
            assert expected.cost.calls > 0
        assert any(a.excluded == "error: scripted crash" for a in got.answers), "an actor's error is the node's error"
    finally:
        ray_swarm.close()


async def test_personas_sharing_a_model_share_its_actor_and_replicas_spread_them(cluster):
    cfg = scripted(on_ray(cluster), nodes=only("right", "noisy-a", "noisy-b", "judge-a", "judge-b"))
    swarm = Swarm.from_config(cfg, store=None)
    try:
        where = {n.id: (await n.backend.where())["pid"] for n in swarm.nodes}
        assert where["judge-a"] == where["judge-b"] and where["noisy-a"] == where["noisy-b"]
        assert len({where["judge-a"], where["noisy-a"], where["right"]}) == 3
        assert os.getpid() not in where.values(), "nodes run in actors, not in the coordinator"
        first = where["judge-a"]
        swarm.close()  # unload: the actors go, and come back on the next call
        assert (await swarm.node("judge-a").backend.where())["pid"] != first
    finally:
        swarm.close()
    replicated = Swarm.from_config(scripted(on_ray(cluster, replicas=2), nodes=only("judge-a", "judge-b")), store=None)
    try:
        pids = {n.id: (await n.backend.where())["pid"] for n in replicated.nodes}
        assert pids["judge-a"] != pids["judge-b"]
        assert "replica 2/2" in replicated.node("judge-b").backend.describe()
    finally:
        replicated.close()


async def test_a_timed_out_call_is_cancelled_in_its_actor_and_later_calls_still_run(cluster):
    nodes = [{"id": "slow", "backend": "scripted", "fault": "timeout", "fault_on": ["answer"], "roles": ["answer"]},
             {"id": "quick", "backend": "scripted", "answer": "42", "roles": ["answer"]}]
    cfg = scripted(on_ray(cluster), nodes=nodes, round={"node_timeout": 0.5})
    swarm = Swarm.from_config(cfg, store=None)
    try:
        for _ in range(2):  # the cancelled call must not hold up the actor's later calls
            result = await asyncio.wait_for(swarm.ask("What is 6 x 7?", protocol="majority", save=False), 30)
            assert result.answer == "42"
            assert [a.excluded for a in result.answers if a.node == "slow"] == ["timeout after 0.5s"]
    finally:
        swarm.close()


async def test_a_dead_actor_fails_its_call_as_a_node_error_and_the_next_call_starts_a_fresh_one(cluster):
    import ray

    swarm = Swarm.from_config(scripted(on_ray(cluster), nodes=only("right")), store=None)
    backend = swarm.node("right").backend
    request = CompletionRequest((Message("user", "What is 6 x 7?"),), context={"question": "What is 6 x 7?"})
    try:
        first = (await backend.where())["pid"]
        handle = backend.pool.replica(0).handle
        ray.kill(handle)
        with pytest.raises(ray.exceptions.RayActorError):  # ray.kill returns before the actor is gone
            for _ in range(100):
                await handle.where.remote()
                await asyncio.sleep(0.1)
        with pytest.raises(NodeError, match="died"):
            await backend.complete(request)
        assert "42" in (await backend.complete(request)).text
        assert (await backend.where())["pid"] != first
    finally:
        swarm.close()


async def test_an_eval_run_on_ray_matches_in_process_and_shares_its_completion_cache(cluster, tmp_path):
    items = [EvalTestItem("q1", "What is 6 x 7?", "42"), EvalTestItem("q2", "What is 5 x 8?", "40")]

    def rows(store: Store, run_id: str) -> list[dict[str, Any]]:
        return sorted(({k: v for k, v in r.items() if k not in ("seconds", "round_id", "run_id", "id")}
                       for r in EvalRuns(store).results(run_id)), key=lambda r: (r["item_id"], r["system"]))

    local_store, ray_store = Store(f"sqlite:///{tmp_path / 'local.db'}"), Store(f"sqlite:///{tmp_path / 'ray.db'}")
    nodes = [n for n in SCRIPTED["nodes"] if n["id"] != "crashes"]  # failed calls are not cached: leave them out
    local = Swarm.from_config(scripted(nodes=nodes), store=None)
    ray_swarm = Swarm.from_config(scripted(on_ray(cluster), nodes=nodes), store=None)
    try:
        expected = await run_eval(local, items, ["peer-rank", "council"], store=local_store, suite="t")
        got = await run_eval(ray_swarm, items, ["peer-rank", "council"], store=ray_store, suite="t")
        assert rows(ray_store, got.run_id) == rows(local_store, expected.run_id)
        assert got.cache.misses == expected.cache.misses > 0
        # the cache lives on the coordinator and is keyed the same: a ray run reuses a local run's outputs
        again = await run_eval(ray_swarm, items, ["peer-rank", "council"], store=local_store, suite="t")
        assert (again.cache.misses, again.cache.hits) == (0, expected.cache.misses + expected.cache.hits)
    finally:
        ray_swarm.close()
        local_store.close()
        ray_store.close()


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SWARMRANK_HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0", "COLUMNS": "200"}
    env.pop("SWARMRANK_DB", None)
    return subprocess.run([sys.executable, "-m", "swarmrank", *args], capture_output=True, text=True, env=env,
                          timeout=120)


CLI_CONFIG = """
[executor]
address = "{address}"
[[nodes]]
id = "right"
backend = "scripted"
answer = "42"
roles = ["answer"]
[[nodes]]
id = "wrong"
backend = "scripted"
answer = "41"
roles = ["answer"]
[[nodes]]
id = "judge"
backend = "scripted"
judge = "truth"
truth = "42"
roles = ["judge"]
"""


def test_ask_with_executor_ray_runs_the_round_on_the_cluster(cluster, tmp_path, isolated_home):
    path = tmp_path / "swarm.toml"
    path.write_text(CLI_CONFIG.format(address=cluster))
    proc = _cli("ask", "What is 17 + 25?", "--config", str(path), "--executor", "ray", "--json", home=isolated_home)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["answer"] == "42" and len(data["judgments"]) == 2


def test_an_unreachable_cluster_is_a_one_line_error(tmp_path, isolated_home):
    pytest.importorskip("ray", reason=NO_RAY)
    path = tmp_path / "swarm.toml"
    path.write_text(CLI_CONFIG.format(address=f"127.0.0.1:{_free_port()}"))
    start = time.monotonic()
    proc = _cli("ask", "What is 17 + 25?", "--config", str(path), "--executor", "ray", home=isolated_home)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: cannot reach the Ray cluster at 127.0.0.1:"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert time.monotonic() - start < 30


def test_the_ray_executor_without_ray_installed_says_to_install_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ConfigError, match=r"install swarmrank\[ray\]"):
        Swarm.from_config(scripted({"kind": "ray"}), store=None)


def test_executor_config_is_validated_in_one_line():
    with pytest.raises(ConfigError, match="executor.kind"):
        scripted({"kind": "dask"})
    with pytest.raises(ConfigError, match="executor.replicas"):
        scripted({"kind": "ray", "replicas": 0})
    with pytest.raises(ConfigError, match="unknown executor 'rai'"):
        with_executor(scripted(), "rai")
    assert with_executor(scripted(), "ray").executor.kind == "ray"
    assert scripted().executor.kind == "local"


def test_the_local_executor_accepts_and_ignores_replicas():
    cfg = scripted({"kind": "local", "replicas": 3})
    cfg.models["judge"] = cfg.models["judge"].model_copy(update={"replicas": 2})
    swarm = Swarm.from_config(cfg, store=None)
    assert swarm.node("judge-a").backend.describe().startswith("scripted")


@pytest.mark.model
async def test_the_embedded_swarm_gives_the_same_round_on_ray_as_in_process(cluster):
    cfg = load_config(None)
    for node in cfg.nodes:
        node.persona = replace(node.persona, max_tokens=24, judge_max_tokens=16)
    results = []
    for executor in ("local", "ray"):
        section = ExecutorSection(kind=executor, address=cluster)
        swarm = Swarm.from_config(cfg.model_copy(update={"executor": section}), store=None)
        swarm.options = replace(swarm.options, node_timeout=60, deadline=100)
        try:
            start = time.monotonic()
            results.append(await swarm.ask("What is 17 + 25?", protocol="peer-rank", save=False))
            print(f"{executor}: {time.monotonic() - start:.1f}s", file=sys.stderr)
        finally:
            await swarm.aclose_backends()
            swarm.close()
    local, on_ray_ = results
    assert any(a.completion_tokens > 0 for a in local.answers), "the models really generated text"
    assert trace(on_ray_) == trace(local)
