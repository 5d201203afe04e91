"""Streaming: how soon a chat UI shows something, against how long the round takes.

A real ``swarmrank serve`` app on a loopback socket (uvicorn in a thread), a streamed chat
completion per question through httpx, and for each: the time to the first visible delta (the
first ``reasoning_content`` line, which chat UIs show as the model thinking), to the first
``content`` delta (the answer, sent as soon as the round is decided), and to ``[DONE]``.

    .venv/bin/python benchmarks/bench_stream.py                 # the embedded swarm (real models)
    .venv/bin/python benchmarks/bench_stream.py --scripted 0.5  # scripted nodes, 0.5 s per call
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from swarmrank import Swarm, load_config
from swarmrank.nodes.base import Node, Persona
from swarmrank.nodes.scripted import ScriptedBackend
from swarmrank.server import ServerSettings, create_app

sys.path.insert(0, str(Path(__file__).parent))
from _machine import cpu_model  # noqa: E402 - benchmarks run as scripts

QUESTIONS = ["What is 17 + 25?", "What is 8 + 5?", "What is the capital of France?"]


def scripted(latency: float) -> Swarm:
    nodes = [Node(f"a{i}", ScriptedBackend(answers={"*": v}, latency=latency), Persona(seed=i), frozenset({"answer"}))
             for i, v in enumerate(["42", "41", "42", "40"])]
    nodes += [Node(f"j{i}", ScriptedBackend(judge="truth", truth="42", latency=latency), Persona(),
                   frozenset({"judge"})) for i in range(2)]
    return Swarm(nodes, store=None, name=f"scripted-{latency}s")


def serve(swarm: Swarm) -> tuple[uvicorn.Server, str]:
    app = create_app(swarm, store=None, settings=ServerSettings(auth=False, rate_limit=0))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def one(url: str, question: str) -> dict[str, Any]:
    start = time.perf_counter()
    marks: dict[str, float] = {}
    body = {"model": "swarmrank", "stream": True, "messages": [{"role": "user", "content": question}]}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=600) as response:
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                marks["done"] = time.perf_counter() - start
                break
            chunk = json.loads(data)
            delta = (chunk.get("choices") or [{}])[0].get("delta", {})
            if delta.get("reasoning_content") and "reasoning" not in marks:
                marks["reasoning"] = time.perf_counter() - start
            if delta.get("content") and "content" not in marks:
                marks["content"] = time.perf_counter() - start
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scripted", type=float, default=None, help="scripted nodes with this latency per call")
    parser.add_argument("--questions", type=int, default=len(QUESTIONS))
    args = parser.parse_args()
    swarm = scripted(args.scripted) if args.scripted is not None else Swarm.from_config(load_config(), store=None)
    server, url = serve(swarm)
    print(f"# {swarm.name}: {len(swarm.nodes)} nodes, protocol {swarm.protocol}; {cpu_model()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    print("| question | first reasoning_content (s) | first content (s) | [DONE] (s) | first visible / total |")
    print("|---|---:|---:|---:|---:|")
    ratios = []
    for question in QUESTIONS[: args.questions]:
        m = one(url, question)
        ratios.append(m["reasoning"] / m["done"])
        print(f"| {question} | {m['reasoning']:.3f} | {m.get('content', float('nan')):.2f} | {m['done']:.2f} | "
              f"{m['reasoning'] / m['done']:.4f} |")
    print(f"\nmedian first-visible/total: {statistics.median(ratios):.4f}")
    server.should_exit = True


if __name__ == "__main__":
    main()
