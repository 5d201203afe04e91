"""Run untrusted Python (a node's program) in a sandbox, and say plainly what happened.

Every run is a fresh process under `bubblewrap <https://github.com/containers/bubblewrap>`_
(``bwrap``, Debian's ``bubblewrap`` package) with:

- **no network**: a network namespace of its own (no interface but a down loopback);
- **no files of yours**: a mount namespace holding only ``/usr`` and the Python installation,
  read-only, and an empty, size-capped ``tmpfs`` as its working (temporary) directory: ``/etc``,
  your home and every other path are simply not there;
- **no escape by processes**: a PID namespace (when the run ends, everything it started dies with it),
  a new session, ``--die-with-parent``;
- **resource limits** set by the harness before the program runs, soft and hard (so the program
  cannot raise them): CPU seconds, address space, file size, processes, open files, no core dumps;
- **a wall clock** kept by the parent: past it the sandbox is killed;
- **an output cap** kept by the parent: past it the sandbox is killed.

Every failure becomes a :class:`Run` with a ``status`` (``ok``, ``error``, ``timeout``, ``memory``,
``output``, ``killed``) and a one-line ``detail``; nothing here hangs or raises for what the
program does. Only a missing or broken sandbox raises :class:`~swarmrank.errors.SandboxError`.

The isolation protects the machine, not the result: a program runs in the harness's own
interpreter, so a hostile one could forge its own outcomes (as with HumanEval's own executor).
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from swarmrank.errors import SandboxError

__all__ = ["Limits", "Outcome", "Run", "available", "call_each", "check", "run_script"]

Status = Literal["ok", "error", "timeout", "memory", "output", "killed"]

INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap)"


@dataclass(frozen=True)
class Limits:
    """What one sandboxed run may use."""

    wall: float = 10.0  # seconds, the whole run (start-up included)
    cpu: int = 8  # CPU seconds
    per_call: float = 2.0  # seconds one call of the entry point may take (call_each)
    memory_mb: int = 512  # address space
    output_bytes: int = 1_000_000  # what the parent reads at most
    disk_mb: int = 16  # the temporary directory (tmpfs)
    processes: int = 8  # RLIMIT_NPROC: counted per user id, so forks usually fail outright


@dataclass(frozen=True)
class Run:
    """What one sandboxed run did."""

    status: Status
    detail: str
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    seconds: float = 0.0
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Outcome:
    """One call of a program's entry point on one input: its return value's ``repr`` or what went wrong."""

    kind: Literal["value", "raise", "timeout", "missing"]
    text: str

    def __str__(self) -> str:
        return self.text if self.kind == "value" else f"<{self.kind}: {self.text}>"


# -- the harness: runs inside the sandbox ---------------------------------------------------------

_HARNESS = r'''
import ast, io, json, os, resource, signal, sys
job = json.loads(sys.stdin.read())
sys.stdin = io.StringIO("")
if os.getuid() == 0:  # started by root: become nobody, or limits on processes would not hold
    try:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    except OSError as exc:
        sys.stderr.write("sandbox: cannot drop root: %s\n" % exc)
        sys.exit(97)
lim = job["limits"]
for name, value, hard in (("RLIMIT_CPU", lim["cpu"], lim["cpu"] + 1), ("RLIMIT_AS", lim["memory"], None),
                          ("RLIMIT_FSIZE", lim["fsize"], None), ("RLIMIT_NPROC", lim["nproc"], None),
                          ("RLIMIT_NOFILE", 64, None), ("RLIMIT_CORE", 0, None)):
    try:  # SIGXCPU at the soft CPU limit, SIGKILL a second later
        resource.setrlimit(getattr(resource, name), (value, value if hard is None else hard))
    except (ValueError, OSError):
        pass
if job["mode"] == "script":
    glb = {"__name__": "__main__"}
    exec(compile(job["source"], "<program>", "exec"), glb)
    sys.exit(0)
out = os.fdopen(os.dup(1), "w")
null = os.open(os.devnull, os.O_WRONLY)
os.dup2(null, 1)
os.dup2(null, 2)
sys.stdout = sys.stderr = io.StringIO()
class _Late(BaseException):
    pass
def _alarm(signum, frame):
    raise _Late()
signal.signal(signal.SIGALRM, _alarm)
def emit(record):
    out.write(json.dumps(record) + "\n")
    out.flush()
def short(text):
    text = str(text)
    return text if len(text) <= job["max_repr"] else text[: job["max_repr"]] + "..."
def guarded(fn):
    signal.setitimer(signal.ITIMER_REAL, job["per_call"])
    try:
        return ("value", fn())
    except _Late:
        return ("timeout", "over %gs" % job["per_call"])
    except MemoryError:
        return ("raise", "MemoryError")
    except RecursionError:
        return ("raise", "RecursionError")
    except BaseException as exc:
        return ("raise", short("%s: %s" % (type(exc).__name__, exc)))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.stdout = sys.stderr = io.StringIO()
glb = {"__name__": "__program__"}
kind, value = guarded(lambda: exec(compile(job["source"], "<program>", "exec"), glb))
if kind != "value":
    emit({"load": kind, "text": value})
    sys.exit(0)
emit({"load": "ok"})
fn = glb.get(job["entry"])
for arg_src in job["inputs"]:
    if not callable(fn):
        emit({"kind": "missing", "text": "no function %s" % job["entry"]})
        continue
    try:
        args = ast.literal_eval(arg_src)
    except Exception as exc:
        emit({"kind": "raise", "text": "bad input: %s" % exc})
        continue
    kind, value = guarded(lambda: fn(*args))
    if kind == "value":
        value = guarded(lambda: short(repr(value)))[1]
    emit({"kind": kind, "text": value})
'''


# -- the sandbox ----------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _bwrap() -> str | None:
    return shutil.which("bwrap")


def _python() -> Path:
    """The real interpreter (a virtual environment's ``python`` is a link to it)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return Path(os.path.realpath(base))


def _command(limits: Limits) -> list[str]:
    bwrap = _bwrap()
    if bwrap is None:
        raise SandboxError(f"running code needs the bubblewrap sandbox (bwrap), which is not installed: {INSTALL_HINT}")
    python = _python()
    if os.geteuid() == 0:
        # root is exempt from RLIMIT_NPROC even inside a user namespace of its own: keep the real
        # kernel ids and let the harness drop to nobody (the one capability it keeps is for that)
        unshare = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                   "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        unshare = ["--unshare-all"]
    cmd = [bwrap, *unshare, "--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        path = Path(top)
        if path.is_symlink():
            cmd += ["--symlink", os.readlink(path), top]
        elif path.is_dir():
            cmd += ["--ro-bind", top, top]
    for path in sorted({Path(os.path.realpath(sys.base_prefix)), python.parent}):
        if str(path).startswith("/usr/") or any(str(path).startswith(str(p) + "/") for p in _bound(cmd)):
            continue
        for parent in reversed(path.parents[:-1]):  # traversable by the unprivileged program
            cmd += ["--perms", "0755", "--dir", str(parent)]
        cmd += ["--ro-bind", str(path), str(path)]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(limits.disk_mb * 2**20),
            "--tmpfs", "/tmp", "--chdir", "/tmp", "--clearenv", "--setenv", "HOME", "/tmp",
            "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "PYTHONHASHSEED", "0",
            str(python), "-I", "-S", "-B", "-c", _HARNESS]
    return cmd


def _bound(cmd: Sequence[str]) -> list[str]:
    return [cmd[i + 2] for i, arg in enumerate(cmd[:-2]) if arg == "--ro-bind"]


@lru_cache(maxsize=1)
def _probe() -> str | None:
    """None if the sandbox works here, else why not (one line)."""
    try:
        run = _execute({"mode": "script", "source": "print('ok')"}, Limits(wall=20.0))
    except SandboxError as exc:
        return str(exc)
    if run.status != "ok" or run.stdout.strip() != "ok":
        return f"the bubblewrap sandbox does not run here ({run.detail}); user namespaces may be disabled"
    return None


def available() -> str | None:
    """None if code can run here, else the one-line reason it cannot (bwrap missing or refused)."""
    return _probe()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _execute(job: dict[str, Any], limits: Limits) -> Run:
    job = {**job, "limits": {"cpu": limits.cpu, "memory": limits.memory_mb * 2**20,
                             "fsize": limits.disk_mb * 2**20, "nproc": limits.processes}}
    payload = json.dumps(job).encode()
    start = time.monotonic()
    proc = subprocess.Popen(_command(limits), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        proc.stdin.write(payload)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    chunks: dict[int, list[bytes]] = {proc.stdout.fileno(): [], proc.stderr.fileno(): []}
    total = 0
    verdict: tuple[Status, str] | None = None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        open_streams = 2
        while open_streams:
            left = limits.wall - (time.monotonic() - start)
            if left <= 0:
                verdict = ("timeout", f"ran past the {limits.wall:g}s wall-clock limit and was killed")
                break
            for key, _ in sel.select(timeout=left):
                data = os.read(key.fd, 65536)
                if not data:
                    sel.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                total += len(data)
                chunks[key.fd].append(data)
            if total > limits.output_bytes:
                verdict = ("output", f"wrote more than {limits.output_bytes} bytes of output and was killed")
                break
    if verdict is not None:
        _kill(proc)
    else:
        try:
            proc.wait(timeout=max(0.1, limits.wall - (time.monotonic() - start)))
        except subprocess.TimeoutExpired:
            _kill(proc)
            verdict = ("timeout", f"ran past the {limits.wall:g}s wall-clock limit and was killed")
    seconds = time.monotonic() - start
    stdout = b"".join(chunks[proc.stdout.fileno()]).decode("utf-8", "replace")[: limits.output_bytes]
    stderr = b"".join(chunks[proc.stderr.fileno()]).decode("utf-8", "replace")[-4000:]
    proc.stdout.close()
    proc.stderr.close()
    code = proc.returncode
    if verdict is None:
        verdict = _status(code, stderr, limits)
    return Run(status=verdict[0], detail=verdict[1], stdout=stdout, stderr=stderr, exit_code=code,
               seconds=seconds, records=_records(stdout) if job["mode"] == "calls" else [])


def _status(code: int | None, stderr: str, limits: Limits) -> tuple[Status, str]:
    if code == 0:
        return "ok", "exited normally"
    last = next((ln for ln in reversed(stderr.strip().splitlines()) if ln.strip()), "")
    if "MemoryError" in last:
        return "memory", f"ran out of its {limits.memory_mb} MB of memory"
    # bwrap passes on the program's exit status; a signal shows as 128 + its number
    signum = code - 128 if code is not None and code > 128 else (-code if code is not None and code < 0 else None)
    if signum == signal.SIGXCPU:
        return "timeout", f"used its {limits.cpu} CPU seconds and was stopped"
    if signum == signal.SIGKILL:  # not by us (that is a wall-clock or output verdict)
        return "killed", f"killed by SIGKILL (the hard CPU limit of {limits.cpu + 1}s, or the system)"
    if signum is not None:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return "killed", f"killed by {name}"
    if last.startswith(("bwrap:", "sandbox:")):
        raise SandboxError(f"the bubblewrap sandbox failed: {last}")
    return "error", last or f"exited with status {code}"


def _records(stdout: str) -> list[dict[str, Any]]:
    records = []
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


# -- what callers use -----------------------------------------------------------------------------

def run_script(source: str, limits: Limits | None = None) -> Run:
    """Run ``source`` as a script; ``ok`` iff it exits with status 0 (e.g. its asserts hold)."""
    return _execute({"mode": "script", "source": source}, limits or Limits())


def check(program: str, tests: str, entry: str, limits: Limits | None = None) -> Run:
    """HumanEval-style: run ``program``, then ``tests`` (which define ``check``), then ``check(entry)``."""
    source = f"{program}\n\n{tests}\n\ncheck({entry})\n"
    return run_script(source, limits)


def call_each(program: str, entry: str, inputs: Sequence[str], limits: Limits | None = None,
              *, max_repr: int = 300) -> tuple[Run, list[Outcome]]:
    """Load ``program`` once and call ``entry(*args)`` for each input (the ``repr`` of an argument
    tuple, read with :func:`ast.literal_eval`), each call under ``limits.per_call`` seconds.

    Returns the run and one :class:`Outcome` per input, in order; an input the run never reached (it
    was killed, or the program failed to load) is a ``timeout`` or ``missing`` outcome with the reason.
    """
    limits = limits or Limits()
    run = _execute({"mode": "calls", "source": program, "entry": entry, "inputs": list(inputs),
                    "per_call": limits.per_call, "max_repr": max_repr}, limits)
    records = run.records
    load = records[0] if records and "load" in records[0] else None
    outcomes: list[Outcome] = []
    if load is not None and load["load"] != "ok":
        reason = f"the program failed to load: {load.get('text', '')}"
        return run, [Outcome("missing", reason) for _ in inputs]
    for index in range(len(inputs)):
        if load is not None and index + 1 < len(records):
            rec = records[index + 1]
            kind = rec.get("kind")
            outcomes.append(Outcome(kind if kind in ("value", "raise", "timeout", "missing") else "raise",
                                    str(rec.get("text", ""))))
        else:
            outcomes.append(Outcome("timeout" if run.status in ("timeout", "killed") else "missing", run.detail))
    return run, outcomes
