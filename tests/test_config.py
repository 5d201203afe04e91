"""Tests for swarmrank.config: the embedded default swarm, validation errors and backend options."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from swarmrank.config import default_config_text, load_config, parse_config
from swarmrank.errors import ConfigError


def minimal(**sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "models": {"tiny": {"backend": "scripted", "n_ctx": 512, "source": "tiny-1"}},
        "nodes": [{"id": "n1", "model": "tiny"}],
    }
    data.update(sections)
    return data


def config_error(data: dict[str, Any], source: str = "swarm.toml") -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, source)
    message = str(info.value)
    assert "\n" not in message, f"error message is not one line: {message!r}"
    assert message.startswith(f"{source}: ")
    return message


# --- the embedded default -----------------------------------------------------------------------

def test_embedded_default_config_loads_with_six_nodes_and_their_roles():
    config = load_config(None)
    roles = {node.id: node.roles for node in config.nodes}
    assert roles == {
        "smol-precise": ["answer"],
        "smol-stepwise": ["answer"],
        "gemma-precise": ["answer"],
        "gemma-creative": ["answer"],
        "smol-judge": ["judge"],
        "gemma-judge": ["judge"],
    }
    assert [node.id for node in config.nodes][:2] == ["smol-precise", "smol-stepwise"]


def test_embedded_default_config_matches_the_shipped_toml():
    config = load_config(None)
    raw = tomllib.loads(default_config_text())
    assert config.swarm.name == raw["swarm"]["name"] == "embedded"
    assert config.round.schedule == "cluster"
    assert config.round.judges_per_pair == 2
    assert config.round.node_timeout == 90.0
    assert config.round.max_samples == 16
    assert sorted(config.models) == ["gemma3", "smollm2"]
    assert [n.model for n in config.nodes] == [n["model"] for n in raw["nodes"]]
    assert [n.persona.seed for n in config.nodes] == [1, 2, 3, 4, 5, 6]
    judges = [n for n in config.nodes if "judge" in n.roles]
    assert [n.persona.judge_max_tokens for n in judges] == [48, 48]


def test_embedded_default_backend_for_shares_the_model_and_merges_options():
    config = load_config(None)
    backend, options = config.backend_for(config.nodes[0])
    assert backend == "llamacpp"
    assert options == {"source": "smollm2-135m", "n_ctx": 2048}


# --- backend_for --------------------------------------------------------------------------------

def test_backend_for_merges_model_options_with_node_overrides():
    data = minimal(nodes=[{"id": "n1", "model": "tiny", "n_ctx": 4096, "stop": ["\n"]}])
    config = parse_config(data)
    backend, options = config.backend_for(config.nodes[0])
    assert backend == "scripted"
    assert options == {"n_ctx": 4096, "source": "tiny-1", "stop": ["\n"]}


def test_backend_for_persona_fields_are_not_backend_options():
    config = parse_config(minimal(nodes=[{"id": "n1", "model": "tiny", "temperature": 0.9, "seed": 7}]))
    node = config.nodes[0]
    assert (node.persona.temperature, node.persona.seed) == (0.9, 7)
    assert config.backend_for(node)[1] == {"n_ctx": 512, "source": "tiny-1"}


def test_backend_for_inline_backend_takes_the_node_options():
    config = parse_config({"nodes": [{"id": "remote", "backend": "openai", "url": "http://x/v1"}]})
    assert config.backend_for(config.nodes[0]) == ("openai", {"url": "http://x/v1"})


def test_round_influence_is_validated_and_reaches_the_swarm_options(isolated_home):
    from swarmrank.swarm import Swarm

    config = parse_config({"round": {"influence": {"j": 2.5}}, "nodes": [{"id": "j", "backend": "scripted"}]})
    assert Swarm.from_config(config, store=None).options.influence == {"j": 2.5}
    with pytest.raises(ConfigError, match="round.influence: .*non-negative"):
        parse_config({"round": {"influence": {"j": -1}}, "nodes": [{"id": "j", "backend": "scripted"}]})


def test_an_unreadable_config_file_is_a_config_error(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"[swarm]\nname = \"caf\xe9\"\n")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(path)


def test_node_defaults_give_both_roles():
    config = parse_config(minimal())
    assert config.nodes[0].roles == ["answer", "judge"]


# --- validation errors --------------------------------------------------------------------------

def test_duplicate_node_ids_are_rejected():
    message = config_error(minimal(nodes=[{"id": "n1", "model": "tiny"}, {"id": "n1", "model": "tiny"}]))
    assert message == "swarm.toml: node id 'n1' appears twice"


def test_unknown_model_reference_is_rejected():
    message = config_error(minimal(nodes=[{"id": "n1", "model": "huge"}]))
    assert message == "swarm.toml: node 'n1' names model 'huge', which has no [models.huge] entry"


def test_node_with_neither_model_nor_backend_is_rejected():
    message = config_error({"nodes": [{"id": "n1"}]})
    assert message.startswith("swarm.toml: nodes.0: ")
    assert "'model'" in message and "'backend'" in message


def test_node_with_both_model_and_backend_uses_the_inline_backend_and_passes_model_as_an_option():
    # beside an inline backend, 'model' is that backend's option (e.g. the OpenAI model name)
    config = parse_config({"nodes": [{"id": "n1", "backend": "openai", "model": "gpt-x", "url": "u"}]})
    assert config.backend_for(config.nodes[0]) == ("openai", {"url": "u", "model": "gpt-x"})


def test_unknown_top_level_section_is_rejected():
    message = config_error(minimal(extras={"x": 1}))
    assert message == "swarm.toml: extras: Extra inputs are not permitted"


def test_unknown_round_option_is_rejected():
    assert config_error(minimal(round={"judges": 3})) == "swarm.toml: round.judges: Extra inputs are not permitted"


def test_bad_schedule_is_rejected_listing_the_known_ones():
    message = config_error(minimal(round={"schedule": "random"}))
    assert message == "swarm.toml: round.schedule: unknown schedule 'random' (known: cluster, fortytwo, adaptive)"


@pytest.mark.parametrize("schedule", ["cluster", "fortytwo", "adaptive"])
def test_known_schedules_are_accepted(schedule):
    assert parse_config(minimal(round={"schedule": schedule})).round.schedule == schedule


@pytest.mark.parametrize("roles", [["answer", "boss"], []])
def test_bad_roles_are_rejected(roles):
    message = config_error(minimal(nodes=[{"id": "n1", "model": "tiny", "roles": roles}]))
    assert message == "swarm.toml: nodes.0.roles: roles must be a non-empty subset of ['answer', 'judge']"


@pytest.mark.parametrize("temperature", [-0.1, 2.5])
def test_temperature_out_of_range_is_rejected(temperature):
    message = config_error(minimal(nodes=[{"id": "n1", "model": "tiny", "temperature": temperature}]))
    assert message.startswith("swarm.toml: nodes.0.temperature: Input should be")


@pytest.mark.parametrize("temperature", [0, 2])
def test_temperature_bounds_are_inclusive(temperature):
    config = parse_config(minimal(nodes=[{"id": "n1", "model": "tiny", "temperature": temperature}]))
    assert config.nodes[0].persona.temperature == temperature


def test_error_in_a_later_node_names_its_index():
    data = minimal(nodes=[{"id": "n1", "model": "tiny"}, {"id": "n2", "model": "tiny", "max_tokens": 0}])
    assert config_error(data).startswith("swarm.toml: nodes.1.max_tokens: ")


def test_bad_node_id_is_rejected():
    message = config_error(minimal(nodes=[{"id": "../etc", "model": "tiny"}]))
    assert message.startswith("swarm.toml: nodes.0.id: bad node id '../etc'")


def test_judges_per_pair_below_one_is_rejected():
    assert config_error(minimal(round={"judges_per_pair": 0})).startswith("swarm.toml: round.judges_per_pair: ")


def test_missing_nodes_and_empty_nodes_are_rejected():
    assert config_error({}) == "swarm.toml: nodes: Field required"
    assert config_error({"nodes": []}) == "swarm.toml: a swarm needs at least one node"


def test_several_errors_are_summarised_on_one_line():
    message = config_error(minimal(round={"k": 0, "rounds": -1}))
    assert message.startswith("swarm.toml: round.k: ")
    assert message.endswith("(and 1 more)")


# --- files --------------------------------------------------------------------------------------

def test_load_config_reads_a_file_and_names_it_in_errors(tmp_path: Path):
    good = tmp_path / "swarm.toml"
    good.write_text('[[nodes]]\nid = "solo"\nbackend = "scripted"\nroles = ["answer"]\n', encoding="utf-8")
    config = load_config(good)
    assert [(n.id, n.roles) for n in config.nodes] == [("solo", ["answer"])]

    bad = tmp_path / "bad.toml"
    bad.write_text('[round]\nschedule = "random"\n[[nodes]]\nid = "solo"\nbackend = "scripted"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(bad))}: round\.schedule: unknown schedule 'random'"):
        load_config(bad)


def test_invalid_toml_file_is_a_one_line_config_error(tmp_path: Path):
    path = tmp_path / "broken.toml"
    path.write_text("[swarm\nname = 'x'\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not valid TOML: ")
    assert "\n" not in message


@pytest.mark.parametrize("name", ["missing.toml", "a-directory"])
def test_missing_config_file_is_a_config_error(tmp_path: Path, name: str):
    (tmp_path / "a-directory").mkdir()
    path = tmp_path / name
    with pytest.raises(ConfigError) as info:
        load_config(path)
    wanted = "does not exist" if name == "missing.toml" else "is not a file (a swarm config is a TOML file)"
    assert str(info.value) == f"config file {path} {wanted}"


def test_personas_that_name_the_same_model_share_one_loaded_model(isolated_home):
    from swarmrank.swarm import Swarm

    swarm = Swarm.from_config(load_config(None), store=None)  # builds backends; loads nothing yet
    models = {n.id: n.backend.model for n in swarm.nodes}
    assert models["smol-precise"] is models["smol-stepwise"] is models["smol-judge"]
    assert models["gemma-precise"] is models["gemma-judge"]
    assert models["smol-precise"] is not models["gemma-precise"]
    assert all(m._llm is None for m in models.values())  # lazily loaded on first call
