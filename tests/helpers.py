"""Helpers the test modules share (fixtures live in conftest.py): scripted nodes and swarms, a live
server in a thread, the CLI in a subprocess, and the OpenAI-shaped error check.

Import them as ``from helpers import ...``; no test module imports another.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import uvicorn

from swarmrank.nodes.base import Node, Persona
from swarmrank.nodes.scripted import ScriptedBackend
from swarmrank.round import RoundOptions
from swarmrank.store import Store
from swarmrank.swarm import Swarm

QUESTION = "What is 40 + 2?"
RIGHT_TEXT = "Let me think. The answer is 42."


# -- scripted nodes and swarms --------------------------------------------------------------------


def answerer(node_id: str, answer: str, **kw: Any) -> Node:
    return Node(node_id, ScriptedBackend(answers={"*": answer}, **kw), Persona(seed=len(node_id)), roles=frozenset({"answer"}))


def judge(node_id: str, rule: str = "truth", **kw: Any) -> Node:
    return Node(node_id, ScriptedBackend(judge=rule, **kw), Persona(), roles=frozenset({"judge"}))


def scripted_swarm(answers: Sequence[str], judges: Sequence[Node] = (), **options: Any) -> Swarm:
    nodes = [answerer(f"a{i}", a) for i, a in enumerate(answers)] + list(judges)
    return Swarm(nodes, options=RoundOptions(**options), store=None)


def scripted_config(path: Path, answers: Sequence[str]) -> Path:
    """A swarm config file of scripted answerers n0, n1, … giving ``answers`` (for CLI tests)."""
    import json

    lines = ["[swarm]", 'name = "scripted-cli"']
    for i, text in enumerate(answers):
        lines += ["[[nodes]]", f'id = "n{i}"', 'backend = "scripted"', f"answer = {json.dumps(text)}",
                  'roles = ["answer"]']
    path.write_text("\n".join(lines) + "\n")
    return path


def node(node_id: str, roles: set[str], **kw: Any) -> Node:
    """A scripted node with any roles and backend options."""
    return Node(node_id, ScriptedBackend(**kw), Persona(seed=len(node_id)), roles=frozenset(roles))


def right_and_wrong(store: Store | None, latency: float = 0.0) -> Swarm:
    """One right answerer, two that agree on a wrong answer, a judge that knows the truth (and is
    declared reliable, so a fresh swarm trusts it from the first round): peer-rank picks 42, majority 41."""
    nodes = [node("right", {"answer"}, answers={"*": "42"}, latency=latency),
             node("wrong1", {"answer"}, answers={"*": "41"}, latency=latency),
             node("wrong2", {"answer"}, answers={"*": "41"}, latency=latency),
             node("judge1", {"judge"}, judge="truth", truth="42", latency=latency)]
    return Swarm(nodes, options=RoundOptions(judge_priors={"judge1": 0.9}), name="server-test", store=store)


@dataclass(frozen=True)
class EvalTestItem:
    """A minimal evaluation item (the runner needs id, prompt, task_type, gold and score)."""

    id: str
    prompt: str
    gold: str
    task_type: str = "number"

    def score(self, value: str | None) -> bool:
        return value == self.gold


#: a trusted swarm as a user configures one: two answerers and two judges that are always right,
#: and mallory, who answers 41 to everything and judges for it (a clique adversary)
TRUSTED = """
[swarm]
name = "trusted"
[round]
judges_per_pair = 3
[trust]
enabled = true
[models.good]
backend = "scripted"
accuracy = 1.0
judge = "truth"
answers = { "6 × 7" = "42" }
[[nodes]]
id = "alice"
model = "good"
roles = ["answer"]
[[nodes]]
id = "bob"
model = "good"
roles = ["answer"]
[[nodes]]
id = "carol"
model = "good"
roles = ["judge"]
[[nodes]]
id = "dave"
model = "good"
roles = ["judge"]
[[nodes]]
id = "mallory"
model = "good"
adversary = "clique"
adversary_value = "41"
"""

# -- servers and clients --------------------------------------------------------------------------


class Server:
    """A uvicorn server for one app on a loopback port (0: any free one), in a background thread: for
    tests where a real socket is the point (timing, disconnects, concurrent clients, other processes)."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def openai_client(http: httpx.Client | str, key: str, **kw: Any) -> openai.OpenAI:
    """The official client against a TestClient (in process) or a live server's URL."""
    if isinstance(http, str):
        return openai.OpenAI(base_url=f"{http}/v1", api_key=key, max_retries=kw.pop("max_retries", 0), **kw)
    return openai.OpenAI(base_url=f"{http.base_url}/v1", api_key=key, http_client=http,
                         max_retries=kw.pop("max_retries", 0), **kw)


def ask(model: str = "swarmrank", content: str = QUESTION) -> dict[str, Any]:
    """A chat completion request body."""
    return {"model": model, "messages": [{"role": "user", "content": content}]}


def assert_openai_error(response: httpx.Response, status: int, *, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"] and "Traceback" not in response.text
    if code is not None:
        assert body["error"]["code"] == code
    return dict(body["error"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the CLI ----------------------------------------------------------------------------------------


def run_cli(*args: str, home: Path, check: bool = False, timeout: float = 120,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``swarmrank ARGS`` as a user runs it: a real process, its own SWARMRANK_HOME, a wide terminal
    (``stdin``: text piped in; otherwise no input)."""
    env = {**os.environ, "SWARMRANK_HOME": str(home), "COLUMNS": "200"}
    env.pop("SWARMRANK_DB", None)
    proc = subprocess.run([sys.executable, "-m", "swarmrank", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, input=stdin if stdin is not None else "")
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc
