"""The public surface is exactly __all__, and importing swarmrank stays cheap."""

from __future__ import annotations

import subprocess
import sys

import swarmrank


def test_all_lists_exactly_the_public_names():
    public = {name for name in dir(swarmrank) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(swarmrank, name)).__name__ == "module"}
    assert set(swarmrank.__all__) == public - modules


def test_every_exported_error_derives_from_swarm_error():
    errors = [getattr(swarmrank, n) for n in swarmrank.__all__ if n.endswith("Error")]
    assert len(errors) == 10
    assert all(issubclass(e, swarmrank.SwarmError) for e in errors)


def test_importing_swarmrank_loads_no_model_runtime_client_or_database():
    code = ("import sys, swarmrank; heavy = [m for m in ('llama_cpp', 'openai', 'sqlalchemy', 'httpx') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
