"""The sandbox that runs code answers: every hostile program is contained and reported, never a hang.

These tests need bubblewrap (bwrap); .ci/run installs it, and a missing sandbox fails them rather than
skipping them.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from swarmrank import sandbox
from swarmrank.sandbox import Limits


@pytest.fixture(autouse=True)
def needs_the_sandbox():
    assert sandbox.available() is None, f"the sandbox must work here: {sandbox.available()}"


def _sandboxed_processes() -> int:
    """Processes on this machine still running the sandbox harness."""
    marker = b"cannot drop root"
    count = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if marker in Path(f"/proc/{pid}/cmdline").read_bytes():
                    count += 1
            except OSError:
                continue
    return count


def test_a_program_runs_and_its_calls_are_reported_one_by_one():
    run, outcomes = sandbox.call_each("def f(x):\n    return 10 // x\n", "f", ["(2,)", "(0,)", "('a',)"])
    assert run.status == "ok"
    assert [o.kind for o in outcomes] == ["value", "raise", "raise"]
    assert outcomes[0].text == "5"
    assert outcomes[1].text.startswith("ZeroDivisionError")


def test_an_infinite_loop_times_out_per_call_and_the_run_goes_on():
    start = time.monotonic()
    run, outcomes = sandbox.call_each("def f(x):\n    while True:\n        x += 1\n", "f", ["(1,)", "(2,)"],
                                      Limits(per_call=0.3, wall=10))
    assert [o.kind for o in outcomes] == ["timeout", "timeout"]
    assert run.status == "ok"
    assert time.monotonic() - start < 5


def test_an_infinite_loop_in_a_script_is_stopped_by_the_cpu_limit():
    run = sandbox.run_script("while True:\n    pass\n", Limits(cpu=1, wall=10))
    assert run.status == "timeout"
    assert "CPU" in run.detail
    assert run.seconds < 5


def test_a_sleeping_program_is_killed_at_the_wall_clock_limit():
    run = sandbox.run_script("import time\ntime.sleep(60)\n", Limits(wall=1.0))
    assert run.status == "timeout"
    assert "wall-clock" in run.detail
    assert run.seconds < 3


def test_a_fork_bomb_is_contained_and_leaves_no_process_behind():
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    before = _sandboxed_processes()
    run = sandbox.run_script(bomb, Limits(wall=2.0, processes=4))
    assert run.status in ("timeout", "killed")
    assert run.seconds < 5
    deadline = time.monotonic() + 5
    while _sandboxed_processes() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sandboxed_processes() <= before
    # forking fails outright instead of filling the machine
    _, outcomes = sandbox.call_each("import os\ndef f():\n    return [os.fork() for _ in range(50)]\n", "f", ["()"])
    assert outcomes[0].kind == "raise" and "BlockingIOError" in outcomes[0].text


def test_huge_output_is_cut_off_and_reported():
    run = sandbox.run_script("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
                             Limits(output_bytes=200_000, wall=10))
    assert run.status == "output"
    assert len(run.stdout) <= 200_000
    assert run.seconds < 5
    # printing inside a called function goes nowhere and does not break the results
    _, outcomes = sandbox.call_each("def f():\n    print('y' * 10_000_000)\n    return 1\n", "f", ["()"])
    assert [str(o) for o in outcomes] == ["1"]


def test_a_huge_file_and_a_huge_allocation_are_refused():
    run = sandbox.run_script("open('big', 'w').write('x' * 2**26)\n", Limits(disk_mb=4))
    assert run.status == "error" and "File too large" in run.detail
    run = sandbox.run_script("x = ' ' * 2**33\n", Limits(memory_mb=256))
    assert run.status == "memory"


def test_files_outside_the_temporary_directory_cannot_be_read_or_written(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the host's secret")
    program = (f"def read():\n    return open({str(secret)!r}).read()\n"
               f"def write():\n    open({str(secret)!r}, 'w').write('pwned')\n"
               "def passwd():\n    return open('/etc/passwd').read()\n"
               "def scratch():\n    open('note.txt', 'w').write('mine')\n    return open('note.txt').read()\n")
    for entry, expected in (("read", "FileNotFoundError"), ("write", "FileNotFoundError"),
                            ("passwd", "FileNotFoundError")):
        _, outcomes = sandbox.call_each(program, entry, ["()"])
        assert outcomes[0].kind == "raise" and outcomes[0].text.startswith(expected), outcomes[0]
    _, outcomes = sandbox.call_each(program, "scratch", ["()"])
    assert str(outcomes[0]) == "'mine'"  # its own temporary directory works
    assert secret.read_text() == "the host's secret"


def test_the_network_is_unreachable_even_on_loopback():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(1)
    port = listener.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        try:
            accepted.append(listener.accept())
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    program = ("import socket\n"
               f"def local():\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
               "def remote():\n    socket.create_connection(('192.0.2.1', 80), timeout=2)\n")
    _, outcomes = sandbox.call_each(program, "local", ["()"])
    assert outcomes[0].kind == "raise" and "Connection refused" in outcomes[0].text
    _, outcomes = sandbox.call_each(program, "remote", ["()"])
    assert outcomes[0].kind == "raise" and "unreachable" in outcomes[0].text
    thread.join()
    listener.close()
    assert accepted == []


def test_a_program_that_fails_to_load_is_reported_for_every_input():
    run, outcomes = sandbox.call_each("import not_a_module_anywhere\n", "f", ["(1,)", "(2,)"])
    assert run.status == "ok"
    assert all(o.kind == "missing" and "ModuleNotFoundError" in o.text for o in outcomes)


def test_humaneval_style_check_passes_only_a_correct_program():
    tests = "def check(candidate):\n    assert candidate(2, 3) == 5\n"
    assert sandbox.check("def add(a, b):\n    return a + b\n", tests, "add").ok
    failed = sandbox.check("def add(a, b):\n    return a - b\n", tests, "add")
    assert failed.status == "error" and "AssertionError" in failed.detail
