"""Simon Willison's `llm` CLI, configured to use `swarmrank serve` as an OpenAI-compatible model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import QUESTION, RIGHT_TEXT, right_and_wrong

LLM = shutil.which("llm", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(LLM is None, reason="the llm CLI is not installed (the dev extra installs it)")


def llm(*args: str, user_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"LLM_USER_PATH": str(user_path), "PATH": str(Path(sys.executable).parent), "HOME": str(user_path)}
    return subprocess.run([LLM, *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def user_path(tmp_path: Path, start, store, key) -> Path:
    """An llm config dir with two swarm models (peer-rank and majority) and the API key stored."""
    url = start(right_and_wrong(store), store=store)
    path = tmp_path / "llm"
    path.mkdir()
    (path / "extra-openai-models.yaml").write_text(
        f"- model_id: swarm\n  model_name: swarmrank/peer-rank\n  api_base: {url}/v1\n  api_key_name: swarmrank\n"
        f"- model_id: swarm-majority\n  model_name: swarmrank/majority\n  api_base: {url}/v1\n"
        "  api_key_name: swarmrank\n")
    (path / "keys.json").write_text(json.dumps({"swarmrank": key}))
    return path


def test_llm_streams_the_consensus_answer_from_the_swarm(user_path):
    proc = llm("-m", "swarm", QUESTION, user_path=user_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == RIGHT_TEXT  # peer-rank: the judge's pick, not the 2-vote majority


def test_llm_without_streaming_and_with_another_protocol(user_path):
    proc = llm("-m", "swarm-majority", "--no-stream", QUESTION, user_path=user_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Let me think. The answer is 41."  # majority: two wrong nodes outvote one


def test_llm_reports_a_bad_key_as_an_error(user_path):
    (user_path / "keys.json").write_text(json.dumps({"swarmrank": "sr-not-a-key"}))
    proc = llm("-m", "swarm", QUESTION, user_path=user_path)
    assert proc.returncode != 0
    assert "401" in proc.stderr or "API key" in proc.stderr or "Incorrect" in proc.stderr


def test_llm_schema_gets_a_json_object_that_matches_it(tmp_path, start, store, key):
    from swarmrank.swarm import Swarm

    from helpers import node

    answers = ['{"name": "Ada", "age": 36}', '{"name": "Ada", "age": 36}', '{"name": "Ada"}']
    swarm = Swarm([node(f"a{i}", {"answer"}, answers={"*": text}) for i, text in enumerate(answers)], store=store)
    url = start(swarm, store=store)
    path = tmp_path / "llm-json"
    path.mkdir()
    (path / "extra-openai-models.yaml").write_text(
        f"- model_id: swarm\n  model_name: swarmrank/majority\n  api_base: {url}/v1\n  api_key_name: swarmrank\n"
        "  supports_schema: true\n")
    (path / "keys.json").write_text(json.dumps({"swarmrank": key}))
    proc = llm("-m", "swarm", "--schema", "name, age int", "Who wrote the first program?", user_path=path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"name": "Ada", "age": 36}
