"""Free text and short answers cluster by meaning (packaged MiniLM embeddings), with a guard against
merging answers that differ in a number or a negation."""

from __future__ import annotations

import numpy as np
import pytest

from swarmrank.embeddings import SAME_MEANING, EndpointEmbedder, MiniLM, conflicting, embedder_for
from swarmrank.errors import ConfigError
from swarmrank.round import RoundOptions

from helpers import Server, judge, scripted_swarm

QUESTION = "In one sentence, what is the capital of France and why is it well known?"
PARIS = "The capital of France is Paris.\n"
PARAPHRASE = "Paris is the French capital city.\n"
LYON = "The capital of France is Lyon.\n"


def test_paraphrases_are_one_cluster_and_a_different_answer_stands_alone():
    result = scripted_swarm([PARIS, LYON, PARAPHRASE], [judge("j", "first")]).ask_sync(
        QUESTION, protocol="majority", task_type="free")
    assert [sorted(c.nodes) for c in result.candidates] == [["a0", "a2"], ["a1"]]
    assert result.answer == "capital of france is paris"
    assert result.confidence == pytest.approx(2 / 3)


def test_with_embeddings_off_only_identical_texts_cluster():
    result = scripted_swarm([PARIS, LYON, PARAPHRASE], embeddings="none").ask_sync(
        QUESTION, protocol="majority", task_type="free")
    assert len(result.candidates) == 3


def test_short_answers_use_meaning_only_where_exact_matching_fails():
    result = scripted_swarm(["Paris", "Paris, France", "Lyon", "yes", "no", "PARIS"]).ask_sync(
        "What is the capital of France?", protocol="majority", task_type="short")
    assert [(c.answer, sorted(c.nodes)) for c in result.candidates] == [
        ("paris", ["a0", "a1", "a5"]), ("lyon", ["a2"]), ("yes", ["a3"]), ("no", ["a4"])]


def test_numbers_and_negations_are_never_merged():
    assert conflicting("Bats are blind.", "Bats are not blind.")
    assert conflicting("He was born in 1879.", "He was born in 1897.")
    assert not conflicting("He was born in 1879.", "His year of birth was 1879.")
    result = scripted_swarm(["Bats are blind.\n", "Bats are not blind.\n"]).ask_sync(
        "Tell me in a sentence whether bats are blind, with a reason for your answer please.", protocol="majority",
        task_type="free")
    assert len(result.candidates) == 2


def test_the_model_is_pinned_and_its_vectors_are_unit_length_and_meaningful():
    model = embedder_for("minilm")
    assert isinstance(model, MiniLM)
    vectors = model.embed([PARIS, PARAPHRASE, "Bananas are rich in potassium."])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] >= SAME_MEANING > vectors[0] @ vectors[2]


def test_a_threshold_from_the_config_is_used():
    strict = scripted_swarm([PARIS, PARAPHRASE], same_meaning=0.999).ask_sync(
        QUESTION, protocol="majority", task_type="free")
    assert len(strict.candidates) == 2


def test_bad_embeddings_settings_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="unknown embeddings 'bert'"):
        RoundOptions(embeddings="bert")
    with pytest.raises(ConfigError, match="same_meaning"):
        RoundOptions(same_meaning=1.5)


def test_an_openai_compatible_embeddings_endpoint_can_stand_in():
    from fastapi import FastAPI

    app = FastAPI()
    model = MiniLM()
    seen: list[str] = []

    @app.post("/v1/embeddings")
    def embeddings(body: dict) -> dict:
        texts = body["input"]
        seen.extend(texts)
        vectors = model.embed(texts)
        return {"object": "list", "model": body["model"], "usage": {"prompt_tokens": 0, "total_tokens": 0},
                "data": [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]}

    server = Server(app)
    try:
        endpoint = EndpointEmbedder(f"{server.url}/v1", "minilm-served")
        assert np.allclose(endpoint.embed([PARIS]), model.embed([PARIS]), atol=1e-5)
        result = scripted_swarm([PARIS, LYON, PARAPHRASE], embeddings=f"{server.url}/v1",
                                embeddings_model="minilm-served").ask_sync(QUESTION, protocol="majority",
                                                                           task_type="free")
        assert [sorted(c.nodes) for c in result.candidates] == [["a0", "a2"], ["a1"]]
        assert "paris is french capital city" in seen
    finally:
        server.stop()


def test_an_unreachable_endpoint_falls_back_to_exact_matching_and_says_so():
    result = scripted_swarm([PARIS, PARAPHRASE], embeddings="http://127.0.0.1:9/v1",
                            embeddings_model="x").ask_sync(QUESTION, protocol="majority", task_type="free")
    assert len(result.candidates) == 2
    assert any("exact text only" in note for note in result.notes)


def test_ask_type_free_from_the_cli(tmp_path, isolated_home):
    import json

    from helpers import run_cli, scripted_config

    config = scripted_config(tmp_path / "swarm.toml", [PARIS, PARAPHRASE, LYON])
    proc = run_cli("ask", QUESTION, "--type", "free", "--protocol", "majority", "--config", str(config), "--json",
                   home=isolated_home, check=True)
    data = json.loads(proc.stdout)
    assert [c["nodes"] for c in data["candidates"]] == [["n0", "n1"], ["n2"]]
    assert data["answer"] == "capital of france is paris"
