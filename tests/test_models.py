"""Packaged model discovery: files found without running the packages' code, joins are atomic and pinned."""

from __future__ import annotations

import hashlib

import pytest

from swarmrank.errors import ModelNotFoundError
from swarmrank.nodes import models
from swarmrank.settings import Settings


def test_smollm2_is_found_inside_its_package(tmp_path):
    path, fmt = models.resolve_model("smollm2-135m", Settings(home=tmp_path))
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 90_000_000
    assert fmt == "chat"
    assert path.read_bytes()[:4] == b"GGUF"


def test_gemma_parts_are_joined_once_and_checked(tmp_path):
    settings = Settings(home=tmp_path)
    path, fmt = models.resolve_model("gemma3-270m", settings)
    assert fmt == "base"
    assert path.parent == settings.models_dir
    mtime = path.stat().st_mtime_ns
    again, _ = models.resolve_model("gemma3-270m", settings)
    assert again == path and path.stat().st_mtime_ns == mtime  # not joined twice
    assert not list(settings.models_dir.glob("*.partial"))


def test_join_parts_refuses_a_file_that_does_not_match_its_pin(tmp_path):
    parts = []
    for i, content in enumerate([b"GGUF-one", b"-two"]):
        part = tmp_path / f"p{i}"
        part.write_bytes(content)
        parts.append(part)
    target = tmp_path / "out" / "model.gguf"
    with pytest.raises(ModelNotFoundError, match="pinned sha256"):
        models.join_parts(parts, target, "0" * 64, "test")
    assert not target.exists() and not list(target.parent.glob("*.partial"))
    good = hashlib.sha256(b"GGUF-one-two").hexdigest()
    assert models.join_parts(parts, target, good, "test").read_bytes() == b"GGUF-one-two"


def test_a_missing_part_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="missing model part"):
        models.join_parts([tmp_path / "nope"], tmp_path / "m.gguf", "0" * 64, "test")


def test_unknown_model_names_the_known_ones(tmp_path):
    with pytest.raises(ModelNotFoundError, match="known: smollm2-135m, gemma3-270m, qwen2.5-coder-0.5b"):
        models.resolve_model("llama-70b", Settings(home=tmp_path))


def test_an_uninstalled_model_package_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match="is not installed"):
        models.resolve_model("qwen2.5-coder-0.5b", Settings(home=tmp_path))
