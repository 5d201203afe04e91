"""Load on `swarmrank serve`: throughput and latency over loopback HTTP, many requests at once.

The server is the real thing: ``python -m swarmrank serve`` in its own process (one uvicorn
worker, auth on with a key made by ``swarmrank keys create``, no rate limit, every round stored in
SQLite under a temporary SWARMRANK_HOME). The client is ``httpx.AsyncClient`` in this process,
keeping ``concurrency`` requests in flight until ``--requests`` are done.

Part ``scripted``: a six-node scripted swarm shaped like the embedded one (four answerers — three
say 42, one says 41 — and two judges that know 42 is right); ``--latency`` seconds per node call
(0: instant nodes, so the time is the server's and the coordinator's). ``swarmrank/peer-rank``
and ``swarmrank/majority``, plain and streaming. For a stream: time to the first chunk (the role
chunk, sent before the round starts), to the first piece of answer text, and to ``[DONE]``.

Part ``embedded``: the embedded default swarm (two small GGUF models, six personas) on short sums;
the first request of each protocol loads the models and is reported on its own.

Part ``breakdown`` (in this process, no HTTP): where a scripted request's server CPU goes — CPU
time per round of ``Swarm.ask`` with and without saving to SQLite, and per API-key lookup.

Latencies are per request as the client sees them (p50 and p99 by nearest rank); throughput is
answered requests divided by the wall time of the batch. "server CPU" is the server process's
user + system CPU time per request (from /proc), which other load on the machine disturbs less
than wall time.

    .venv/bin/python benchmarks/bench_load.py                          # both parts
    .venv/bin/python benchmarks/bench_load.py --part scripted --requests 200 --concurrency 1 8 32
    .venv/bin/python benchmarks/bench_load.py --part embedded --questions 8 --embedded-concurrency 1 4
    .venv/bin/python benchmarks/bench_load.py --part breakdown
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from _machine import cpu_model  # noqa: E402 - benchmarks run as scripts

SUMS = [(17, 25), (9, 6), (40, 2), (123, 77), (8, 8), (56, 44), (31, 12), (7, 35), (250, 250), (19, 23)]


def scripted_config(latency: float) -> str:
    nodes = [("a1", "42"), ("a2", "42"), ("a3", "42"), ("a4", "41")]
    lines = ['[swarm]\nname = "load-scripted"\nprotocol = "peer-rank"\n']
    for node_id, answer in nodes:
        lines.append(f'[[nodes]]\nid = "{node_id}"\nbackend = "scripted"\nanswer = "{answer}"\n'
                     f'roles = ["answer"]\nlatency = {latency}\n')
    for judge_id in ("j1", "j2"):
        lines.append(f'[[nodes]]\nid = "{judge_id}"\nbackend = "scripted"\njudge = "truth"\ntruth = "42"\n'
                     f'roles = ["judge"]\nlatency = {latency}\n')
    return "\n".join(lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServedSwarm:
    """``swarmrank serve`` in a subprocess with its own SWARMRANK_HOME and one API key."""

    def __init__(self, config: str | None, home: Path, *, timeout: float = 600.0) -> None:
        self.home = home
        self.env = {**os.environ, "SWARMRANK_HOME": str(home), "OPENBLAS_NUM_THREADS": "1"}
        self.env.pop("SWARMRANK_DB", None)
        args = []
        if config is not None:
            path = home / "swarm.toml"
            home.mkdir(parents=True, exist_ok=True)
            path.write_text(config)
            args = ["--config", str(path)]
        created = subprocess.run([sys.executable, "-m", "swarmrank", "keys", "create", "bench", *args],
                                 capture_output=True, text=True, env=self.env, check=True)
        self.key = created.stdout.strip()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "swarmrank", "serve", *args, "--port", str(self.port), "--rate-limit", "0",
             "--timeout", str(timeout), "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=self.env)
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"swarmrank serve exited: {self.process.communicate()[1][-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("swarmrank serve did not come up within 60 s")
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> str:
        self.process.terminate()
        try:
            _, stderr = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        return stderr


@dataclass
class Outcome:
    ok: bool
    seconds: float
    first_chunk: float | None = None
    first_text: float | None = None
    answer: str | None = None
    calls: int = 0
    error: str | None = None


@dataclass
class Batch:
    label: str
    protocol: str
    concurrency: int
    stream: bool
    outcomes: list[Outcome]
    wall: float
    server_cpu: float
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def answered(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.ok]

    @property
    def throughput(self) -> float:
        return len(self.answered) / self.wall if self.wall > 0 else float("nan")

    def pct(self, q: float, attr: str = "seconds") -> float:
        values = sorted(getattr(o, attr) for o in self.answered if getattr(o, attr) is not None)
        if not values:
            return float("nan")
        return values[max(0, math.ceil(q / 100 * len(values)) - 1)]  # nearest rank


def question(i: int) -> tuple[str, str]:
    a, b = SUMS[i % len(SUMS)]
    if i >= len(SUMS):  # different text per request: nothing is cached anywhere, but keep them distinct
        a, b = a + i, b
    return f"What is {a} + {b}?", str(a + b)


async def one_request(client: httpx.AsyncClient, url: str, key: str, protocol: str, text: str,
                      stream: bool) -> Outcome:
    payload = {"model": f"swarmrank/{protocol}", "stream": stream, "messages": [{"role": "user", "content": text}]}
    headers = {"Authorization": f"Bearer {key}"}
    began = time.perf_counter()
    try:
        if not stream:
            response = await client.post(f"{url}/v1/chat/completions", json=payload, headers=headers)
            seconds = time.perf_counter() - began
            if response.status_code != 200:
                return Outcome(False, seconds, error=f"{response.status_code} {response.text[:120]}")
            info = response.json()["swarmrank"]
            return Outcome(True, seconds, answer=info["answer"], calls=info["calls"])
        first_chunk = first_text = None
        result: dict[str, object] | None = None
        async with client.stream("POST", f"{url}/v1/chat/completions", json=payload, headers=headers) as response:
            if response.status_code != 200:
                body = (await response.aread()).decode(errors="replace")
                return Outcome(False, time.perf_counter() - began, error=f"{response.status_code} {body[:120]}")
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                now = time.perf_counter() - began
                first_chunk = first_chunk if first_chunk is not None else now
                if line == "data: [DONE]":
                    break
                event = json.loads(line[6:])
                if "error" in event:
                    return Outcome(False, now, error=str(event["error"])[:120])
                choices = event.get("choices") or []
                if first_text is None and choices and choices[0]["delta"].get("content"):
                    first_text = now
                result = (event.get("swarmrank") or {}).get("result", result)
        seconds = time.perf_counter() - began
        if result is None:
            return Outcome(False, seconds, error="the stream ended without a result")
        return Outcome(True, seconds, first_chunk, first_text, answer=str(result["answer"]), calls=int(result["calls"]))
    except httpx.HTTPError as exc:
        return Outcome(False, time.perf_counter() - began, error=f"{type(exc).__name__}: {exc}")


async def run_batch(served: ServedSwarm, protocol: str, concurrency: int, stream: bool, questions: Sequence[str],
                    label: str, timeout: float) -> Batch:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        pending = list(enumerate(questions))
        outcomes: list[Outcome | None] = [None] * len(questions)

        async def worker() -> None:
            while pending:
                index, text = pending.pop(0)
                outcomes[index] = await one_request(client, served.url, served.key, protocol, text, stream)

        cpu_before = served.cpu_seconds()
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - began
        cpu = served.cpu_seconds() - cpu_before
    return Batch(label, protocol, concurrency, stream, [o for o in outcomes if o is not None], wall, cpu)


def ms(seconds: float) -> str:
    return "–" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def print_scripted(batches: list[Batch], latency: float) -> None:
    print(f"\n### Scripted swarm, {latency * 1000:g} ms per node call\n")
    print("| protocol | mode | concurrency | requests (ok/all) | calls per round | requests/s | p50 ms | p99 ms "
          "| first chunk p50/p99 ms | first text p50/p99 ms | server CPU ms per request |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for b in batches:
        calls = statistics.median(o.calls for o in b.answered) if b.answered else 0
        chunk = f"{ms(b.pct(50, 'first_chunk'))} / {ms(b.pct(99, 'first_chunk'))}" if b.stream else "–"
        text = f"{ms(b.pct(50, 'first_text'))} / {ms(b.pct(99, 'first_text'))}" if b.stream else "–"
        print(f"| {b.protocol} | {'stream' if b.stream else 'plain'} | {b.concurrency} | {len(b.answered)}/"
              f"{len(b.outcomes)} | {calls:g} | {b.throughput:.1f} | {ms(b.pct(50))} | {ms(b.pct(99))} | {chunk} "
              f"| {text} | {b.server_cpu / len(b.outcomes) * 1000:.1f} |")


def print_embedded(batches: list[Batch], first: dict[str, float]) -> None:
    print("\n### Embedded swarm (real GGUF models)\n")
    print("First request of each protocol, models loading included: "
          + ", ".join(f"{p} {s:.1f} s" for p, s in first.items()) + ".\n")
    print("| protocol | concurrency | questions (ok/all) | right answers | calls per round | requests/s "
          "| requests/min | p50 s | p99 s | batch wall s | server CPU s per request |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for b in batches:
        golds = b.extra["golds"]
        assert isinstance(golds, list)
        right = sum(1 for o, g in zip(b.outcomes, golds) if o.ok and o.answer == g)
        calls = statistics.median(o.calls for o in b.answered) if b.answered else 0
        print(f"| {b.protocol} | {b.concurrency} | {len(b.answered)}/{len(b.outcomes)} | {right}/{len(golds)} "
              f"| {calls:g} | {b.throughput:.3f} | {b.throughput * 60:.1f} | {b.pct(50):.1f} | {b.pct(99):.1f} "
              f"| {b.wall:.1f} | {b.server_cpu / len(b.outcomes):.2f} |")


def report_errors(batches: list[Batch]) -> None:
    for b in batches:
        errors = [o.error for o in b.outcomes if not o.ok]
        if errors:
            print(f"\nWARNING: {b.label}: {len(errors)} failed request(s), e.g. {errors[0]}")


async def scripted_part(args: argparse.Namespace, workdir: Path) -> None:
    for latency in args.latency:
        served = ServedSwarm(scripted_config(latency), workdir / f"scripted-{latency:g}", timeout=120)
        try:
            texts = [question(i)[0] for i in range(args.requests)]
            await run_batch(served, "peer-rank", 8, False, texts[: args.warmup], "warm-up", 60)
            batches = []
            for protocol in ("peer-rank", "majority"):
                for stream in (False, True):
                    for concurrency in args.concurrency:
                        label = f"scripted {latency:g}s {protocol} {'stream' if stream else 'plain'} c={concurrency}"
                        batches.append(await run_batch(served, protocol, concurrency, stream, texts, label, 60))
        finally:
            stderr = served.stop()
        print_scripted(batches, latency)
        report_errors(batches)
        if "Traceback" in stderr:
            print(f"\nWARNING: the server printed a traceback:\n{stderr[-2000:]}")


async def embedded_part(args: argparse.Namespace, workdir: Path) -> None:
    served = ServedSwarm(None, workdir / "embedded", timeout=args.embedded_timeout)
    try:
        pairs = [question(i) for i in range(args.questions)]
        texts, golds = [p[0] for p in pairs], [p[1] for p in pairs]
        first: dict[str, float] = {}
        batches = []
        for protocol in ("majority", "peer-rank"):
            warm = await run_batch(served, protocol, 1, False, ["What is 2 + 3?"], "warm-up", args.embedded_timeout)
            first[protocol] = warm.wall
            for concurrency in args.embedded_concurrency:
                label = f"embedded {protocol} c={concurrency}"
                batch = await run_batch(served, protocol, concurrency, False, texts, label, args.embedded_timeout)
                batch.extra["golds"] = golds
                batches.append(batch)
                print(f"  ({label}: {batch.wall:.0f} s)", file=sys.stderr, flush=True)
    finally:
        stderr = served.stop()
    print_embedded(batches, first)
    report_errors(batches)
    if "Traceback" in stderr:
        print(f"\nWARNING: the server printed a traceback:\n{stderr[-2000:]}")


def breakdown_part(workdir: Path, repeat: int = 300) -> None:
    """CPU time (all threads of this process) per scripted round, with and without the save, and per key lookup."""
    from swarmrank.config import load_config
    from swarmrank.server.keys import create_key, find_key
    from swarmrank.store import Store
    from swarmrank.swarm import Swarm

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "swarm.toml").write_text(scripted_config(0.0))
    store = Store(f"sqlite:///{workdir / 'breakdown.db'}")
    swarm = Swarm.from_config(load_config(workdir / "swarm.toml"), store=store)
    key = create_key(store, "breakdown")[0]

    async def per_round(protocol: str, save: bool) -> float:
        for i in range(20):
            await swarm.ask(question(i)[0], protocol=protocol, save=save)
        began = time.process_time()
        for i in range(repeat):
            await swarm.ask(question(i)[0], protocol=protocol, save=save)
        return (time.process_time() - began) / repeat

    print("\n### Where a scripted request's server CPU goes (in-process, no HTTP)\n")
    print(f"CPU time of this process per operation, mean of {repeat}; instant scripted nodes, SQLite store.\n")
    print("| operation | CPU ms |")
    print("|---|---:|")
    for protocol in ("peer-rank", "majority"):
        bare = asyncio.run(per_round(protocol, False))
        saved = asyncio.run(per_round(protocol, True))
        print(f"| {protocol} round, not saved | {bare * 1000:.2f} |")
        print(f"| {protocol} round, saved to SQLite | {saved * 1000:.2f} |")
    began = time.process_time()
    for _ in range(repeat):
        find_key(store, key)
    print(f"| API-key lookup (SHA-256 + one SELECT) | {(time.process_time() - began) / repeat * 1000:.2f} |")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "scripted", "embedded", "breakdown"), default="all")
    parser.add_argument("--requests", type=int, default=200, help="requests per scripted batch (default 200)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32],
                        help="requests in flight, scripted part (default 1 8 32)")
    parser.add_argument("--latency", type=float, nargs="+", default=[0.0, 0.05],
                        help="seconds per scripted node call (default 0 and 0.05)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed scripted requests first (default 20)")
    parser.add_argument("--questions", type=int, default=8, help="questions per embedded batch (default 8)")
    parser.add_argument("--embedded-concurrency", type=int, nargs="+", default=[1, 4],
                        help="requests in flight, embedded part (default 1 4)")
    parser.add_argument("--embedded-timeout", type=float, default=600.0,
                        help="seconds an embedded request may take (server --timeout and client; default 600)")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    print("# Load on `swarmrank serve` (loopback HTTP, one uvicorn worker)\n")
    command = ".venv/bin/python benchmarks/bench_load.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    print(f"command: `{command}`")
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}; Python {platform.python_version()}; "
          f"httpx {httpx.__version__}; uvicorn {_version('uvicorn')}; fastapi {_version('fastapi')}; "
          f"1-min load average {load_before:.2f} before the run")
    if args.part != "breakdown":
        print("The client (httpx.AsyncClient) and the server share the machine's CPUs.")
    with tempfile.TemporaryDirectory(prefix="srload-") as tmp:
        if args.part in ("all", "scripted"):
            asyncio.run(scripted_part(args, Path(tmp)))
        if args.part in ("all", "embedded"):
            asyncio.run(embedded_part(args, Path(tmp)))
        if args.part in ("all", "breakdown"):
            breakdown_part(Path(tmp) / "breakdown")
    print(f"\n1-min load average {os.getloadavg()[0]:.2f} after; total benchmark time "
          f"{time.perf_counter() - started:.0f} s.")


def _version(package: str) -> str:
    from importlib.metadata import version

    try:
        return version(package)
    except Exception:  # noqa: BLE001 - informational only
        return "?"


if __name__ == "__main__":
    main()
