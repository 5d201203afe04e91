"""The embedded llama.cpp node path on SmolLM2-135M: generation speed and judge-phase prefix reuse.

(a) Generation speed. One long greedy completion through our node path
    (``LlamaCppBackend.complete`` awaited in an asyncio loop: worker thread, model lock, chat
    template, ``Llama.create_completion``) against llama.cpp's own generation loop on the same
    ``Llama`` object (same model file, context, batch size and ``n_threads``):

    ``ref-decode``   the low-level C API from the same ``llama_cpp`` package: one ``llama_batch``,
                     ``llama_decode`` for the prompt, then one ``llama_decode`` per token with
                     greedy argmax over ``llama_get_logits_ith(ctx, -1)``;
    ``ref-eval``     llama-cpp-python's ``Llama.eval`` + ``Llama.sample`` loop (greedy sampler).

    Every variant starts from an empty KV cache, decodes the same prompt tokens, and produces the
    same number of tokens (as many as our path produced, up to ``--max-tokens``; the references
    ignore end-of-sequence). Variants are interleaved (A B C, A B C, ...) and medians reported.
    "end-to-end" tokens/s = generated tokens / wall time of the whole call (prompt included);
    "decode" tokens/s = (generated - 1) / time after the prompt's decode returned.

(b) Judge phase with and without reuse of the shared prompt prefix. One question, four candidate
    answers, all 12 ordered pairs, prompts from ``swarmrank.judging.judge_messages``,
    ``purpose='judge'``, ``top_logprobs=5`` (so the extra ``Verdict:`` logits decode runs),
    temperature 0.3, fixed seed. Calls are awaited one after another in a fixed order:

    ``reuse``           natural order, grouped by first candidate: (0,1) (0,2) (0,3) (1,0) ...
    ``reuse-schedule``  the order ``cluster_schedule`` emits: (0,1) (1,0) (0,2) (2,0) ...
    ``no-reuse``        natural order, but before each call ``Llama.reset()`` under the model lock.
                        ``reset()`` sets ``n_tokens = 0``; ``Llama.generate`` only looks for a
                        prefix match when ``n_tokens > 0``, and ``Llama.eval`` starts with
                        ``kv_cache_seq_rm(-1, n_tokens=0, -1)``, so the KV cache is emptied and
                        the whole prompt is decoded again (checked: evaluated == nominal tokens).

    Every phase starts from an empty cache. Prompt tokens *evaluated* are counted by wrapping
    ``Llama.eval`` on the instance (the first eval of each ``generate`` is the prompt suffix that
    was not found in the cache; evals from ``LoadedModel.next_token_logits`` are the verdict step).

    .venv/bin/python benchmarks/bench_llamacpp.py                # both parts, about 3-6 minutes on 2 busy cores
    .venv/bin/python benchmarks/bench_llamacpp.py --part gen --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from swarmrank.judging import judge_messages, parse_verdict
from swarmrank.nodes.base import Completion, CompletionRequest, Message
from swarmrank.nodes.llamacpp import LlamaCppBackend, LoadedModel
from swarmrank.nodes.models import resolve_model
from swarmrank.protocols import shown
from swarmrank.schedule import cluster_schedule
from swarmrank.settings import Settings
from swarmrank.tasks import Task

from _machine import cpu_model  # noqa: E402 - benchmarks run as scripts

GEN_SYSTEM = "You are a helpful assistant."
GEN_PROMPT = "Write a long, detailed story about a dragon who learns to bake bread. Describe every step."

JUDGE_QUESTION = ("A train leaves at 9:40 and arrives at 11:10, covering 120 km. "
                  "What is its average speed in km/h?")
CANDIDATES = (
    "The trip lasts from 9:40 to 11:10, which is 1 hour 30 minutes = 1.5 hours. "
    "Average speed = distance / time = 120 km / 1.5 h = 80 km/h.\nAnswer: 80",
    "The train travels for 1 hour and 10 minutes, about 1.17 hours. "
    "120 / 1.17 is roughly 103 km/h.\nAnswer: 103",
    "Speed is distance times time: 120 km x 1.5 h = 180.\nAnswer: 180",
    "From 9:40 to 11:10 is 90 minutes. In 60 minutes the train covers 120 * 60 / 90 = 80 km, "
    "so the speed is 80 km/h.\nAnswer: 80 km/h",
)


# -- instrumentation ------------------------------------------------------------------------------

@dataclass
class EvalCounter:
    """Counts tokens passed to ``Llama.eval`` by kind and stamps the end of each prompt decode."""

    prompt: int = 0
    verdict: int = 0
    decode: int = 0
    prompt_s: float = 0.0  # seconds inside Llama.eval for each kind
    verdict_s: float = 0.0
    decode_s: float = 0.0
    prompt_done: float | None = None
    _next: str = field(default="decode", repr=False)

    def reset(self) -> None:
        self.prompt = self.verdict = self.decode = 0
        self.prompt_s = self.verdict_s = self.decode_s = 0.0
        self.prompt_done = None
        self._next = "decode"

    def install(self, model: LoadedModel) -> None:
        llm = model.llm()
        orig_eval, orig_generate, orig_ntl = llm.eval, llm.generate, model.next_token_logits

        def eval_(tokens: Sequence[int]) -> None:
            kind, self._next = self._next, "decode"
            start = time.perf_counter()
            orig_eval(tokens)
            end = time.perf_counter()
            if kind == "prompt":
                self.prompt += len(tokens)
                self.prompt_s += end - start
                self.prompt_done = end
            elif kind == "verdict":
                self.verdict += len(tokens)
                self.verdict_s += end - start
            else:
                self.decode += len(tokens)
                self.decode_s += end - start

        def generate(*args: Any, **kwargs: Any) -> Any:
            self._next = "prompt"  # generate() is lazy: its first eval is the uncached prompt suffix
            return orig_generate(*args, **kwargs)

        def next_token_logits(text: str) -> np.ndarray:
            self._next = "verdict"
            return orig_ntl(text)

        llm.eval = eval_  # instance attributes shadow the methods that Llama/LlamaCppBackend call
        llm.generate = generate
        model.next_token_logits = next_token_logits  # type: ignore[method-assign]


def cold(model: LoadedModel) -> None:
    """Empty the KV cache and forget the cached tokens, under the model lock."""
    import llama_cpp

    with model.lock:
        llm = model.llm()
        llm.reset()
        mem = llama_cpp.llama_get_memory(llm.ctx)
        if mem is not None:
            llama_cpp.llama_memory_clear(mem, True)


def prompt_tokens_for(model: LoadedModel, messages: Sequence[Message]) -> list[int]:
    """The token ids ``create_completion`` decodes for these messages (same BOS rule)."""
    llm = model.llm()
    prompt, _ = model.prompt(messages)
    bos = [llm.token_bos()] if llm._model.add_bos_token() and llm.token_bos() != -1 else []
    return bos + llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)


# -- (a) generation speed -------------------------------------------------------------------------

@dataclass
class GenRun:
    tokens: int
    wall: float
    decode: float  # seconds after the prompt decode returned
    text: str


async def run_ours(backend: LlamaCppBackend, counter: EvalCounter, max_tokens: int) -> GenRun:
    request = CompletionRequest(messages=(Message("system", GEN_SYSTEM), Message("user", GEN_PROMPT)),
                                purpose="answer", temperature=0.0, max_tokens=max_tokens, seed=0)
    cold(backend.model)
    counter.reset()
    start = time.perf_counter()
    completion: Completion = await backend.complete(request)
    end = time.perf_counter()
    assert counter.prompt_done is not None
    return GenRun(completion.completion_tokens, end - start, end - counter.prompt_done, completion.text)


def run_ref_decode(model: LoadedModel, n_gen: int) -> GenRun:
    """llama.cpp's own loop through the C API: llama_decode + greedy argmax on the logits."""
    import llama_cpp

    cold(model)
    with model.lock:
        llm = model.llm()
        ctx, n_vocab = llm.ctx, llm.n_vocab()
        start = time.perf_counter()
        prompt = prompt_tokens_for(model, (Message("system", GEN_SYSTEM), Message("user", GEN_PROMPT)))
        batch = llama_cpp.llama_batch_init(max(len(prompt), 1), 0, 1)
        try:
            for i, tok in enumerate(prompt):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = tok, i, 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = int(i == len(prompt) - 1)
            batch.n_tokens = len(prompt)
            if llama_cpp.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed on the prompt")
            prompt_done = time.perf_counter()
            out: list[int] = []
            pos = len(prompt)
            for step in range(n_gen):
                logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))
                tok = int(np.argmax(logits))
                out.append(tok)
                if step == n_gen - 1:
                    break  # like create_completion: the last token is sampled, not decoded
                batch.n_tokens = 1
                batch.token[0], batch.pos[0], batch.n_seq_id[0], batch.logits[0] = tok, pos, 1, 1
                batch.seq_id[0][0] = 0
                if llama_cpp.llama_decode(ctx, batch) != 0:
                    raise RuntimeError("llama_decode failed")
                pos += 1
            text = llm.detokenize(out, prev_tokens=prompt).decode("utf-8", errors="replace")
            end = time.perf_counter()
        finally:
            llama_cpp.llama_batch_free(batch)
        llm.reset()  # the Llama object's token bookkeeping no longer matches the KV cache
    return GenRun(len(out), end - start, end - prompt_done, text)


def run_ref_eval(model: LoadedModel, counter: EvalCounter, n_gen: int) -> GenRun:
    """llama-cpp-python's Llama.eval + Llama.sample loop (greedy sampler built once)."""
    cold(model)
    with model.lock:
        llm = model.llm()
        counter.reset()
        start = time.perf_counter()
        prompt = prompt_tokens_for(model, (Message("system", GEN_SYSTEM), Message("user", GEN_PROMPT)))
        llm._sampler = llm._init_sampler(temp=0.0, repeat_penalty=1.0)  # else sample() reuses a stale one
        counter._next = "prompt"
        llm.eval(prompt)
        out: list[int] = []
        for step in range(n_gen):
            tok = llm.sample(temp=0.0, repeat_penalty=1.0)
            out.append(tok)
            if step == n_gen - 1:
                break
            llm.eval([tok])
        text = llm.detokenize(out, prev_tokens=prompt).decode("utf-8", errors="replace")
        end = time.perf_counter()
        llm._sampler = None
    assert counter.prompt_done is not None
    return GenRun(len(out), end - start, end - counter.prompt_done, text)


async def bench_generation(backend: LlamaCppBackend, counter: EvalCounter, repeat: int, max_tokens: int) -> None:
    model = backend.model
    n_prompt = len(prompt_tokens_for(model, (Message("system", GEN_SYSTEM), Message("user", GEN_PROMPT))))
    warm = await run_ours(backend, counter, max_tokens)  # warm-up, and fixes the token count
    n_gen = warm.tokens
    run_ref_decode(model, min(8, n_gen))
    runs: dict[str, list[GenRun]] = {"ours": [], "ref-decode": [], "ref-eval": []}
    variants: dict[str, Callable[[], Any]] = {
        "ours": lambda: run_ours(backend, counter, max_tokens),
        "ref-decode": lambda: run_ref_decode(model, n_gen),
        "ref-eval": lambda: run_ref_eval(model, counter, n_gen),
    }
    names = list(variants)
    for r in range(repeat):
        order = names[r % len(names):] + names[: r % len(names)]  # rotate who goes first
        for name in order:
            result = variants[name]()
            if asyncio.iscoroutine(result):
                result = await result
            runs[name].append(result)
            print(f"  gen repeat {r + 1}/{repeat} {name:10s} {result.tokens} tok in {result.wall:.2f} s", flush=True)

    def med(name: str, fn: Callable[[GenRun], float]) -> float:
        return statistics.median(fn(x) for x in runs[name])

    e2e = {n: med(n, lambda x: x.tokens / x.wall) for n in names}
    dec = {n: med(n, lambda x: (x.tokens - 1) / x.decode) for n in names}
    wall = {n: med(n, lambda x: x.wall) for n in names}
    # paired ratios: ours against each reference within the same repeat
    paired_e2e = {n: statistics.median((o.tokens / o.wall) / (x.tokens / x.wall)
                                       for o, x in zip(runs["ours"], runs[n])) for n in names}
    same = {n: all(x.text == runs["ours"][0].text for x in runs[n]) for n in names}
    print()
    print(f"## (a) Generation: {n_prompt} prompt tokens, {n_gen} generated tokens (greedy), "
          f"median of {repeat}, interleaved\n")
    print("| variant | generated tokens | median wall s | end-to-end tok/s | decode tok/s "
          "| ours / this (end-to-end) | ours / this (decode) | paired ours / this | same text as ours |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|:---:|")
    for n in names:
        print(f"| {n} | {runs[n][0].tokens} | {wall[n]:.2f} | {e2e[n]:.1f} | {dec[n]:.1f} | "
              f"{e2e['ours'] / e2e[n]:.3f} | {dec['ours'] / dec[n]:.3f} | {paired_e2e[n]:.3f} | "
              f"{'yes' if same[n] else 'no'} |")
    print(f"\nTarget: ours / reference >= 0.9. Completion tokens reported by our path: {n_gen} "
          f"(max_tokens {max_tokens}).")


# -- (b) judge phase prefix reuse -----------------------------------------------------------------

@dataclass
class PhaseRun:
    wall: float
    prompt_s: float
    prompt_eval: int
    verdict_eval: int
    decode_eval: int
    nominal_prompt: int
    reported_prompt: int
    completion: int
    outputs: list[tuple[str, dict[str, float] | None]]


def judge_requests(order: Sequence[tuple[int, int]], max_tokens: int, seed: int) -> list[CompletionRequest]:
    task = Task.create(JUDGE_QUESTION)
    return [CompletionRequest(messages=judge_messages(task, shown(CANDIDATES[i]), shown(CANDIDATES[j])),
                              purpose="judge", temperature=0.3, max_tokens=max_tokens, seed=seed, top_logprobs=5,
                              context={"question": task.question})
            for i, j in order]


async def run_phase(backend: LlamaCppBackend, counter: EvalCounter, requests: Sequence[CompletionRequest],
                    reuse: bool) -> PhaseRun:
    nominal = sum(len(prompt_tokens_for(backend.model, r.messages)) for r in requests)
    cold(backend.model)
    counter.reset()
    reported = completion = 0
    outputs = []
    start = time.perf_counter()
    for request in requests:
        if not reuse:
            with backend.model.lock:
                backend.model.llm().reset()
        c = await backend.complete(request)
        reported += c.prompt_tokens
        completion += c.completion_tokens
        outputs.append((c.text, dict(c.choice_probs) if c.choice_probs else None))
    wall = time.perf_counter() - start
    return PhaseRun(wall, counter.prompt_s, counter.prompt, counter.verdict, counter.decode, nominal, reported, completion, outputs)


async def bench_judge(backend: LlamaCppBackend, counter: EvalCounter, repeat: int, max_tokens: int,
                      seed: int) -> None:
    n = len(CANDIDATES)
    natural = [(i, j) for i in range(n) for j in range(n) if i != j]
    schedule = [(c.first, c.second) for c in cluster_schedule([[f"n{i}"] for i in range(n)], ["judge"],
                                                              judges_per_pair=1, max_full=8)]
    assert sorted(schedule) == sorted(natural)
    variants = {
        "reuse": (judge_requests(natural, max_tokens, seed), True),
        "reuse-schedule": (judge_requests(schedule, max_tokens, seed), True),
        "no-reuse": (judge_requests(natural, max_tokens, seed), False),
    }
    await run_phase(backend, counter, variants["reuse"][0][:2], True)  # warm-up
    names = list(variants)
    runs: dict[str, list[PhaseRun]] = {k: [] for k in names}
    for r in range(repeat):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            reqs, reuse = variants[name]
            result = await run_phase(backend, counter, reqs, reuse)
            runs[name].append(result)
            print(f"  judge repeat {r + 1}/{repeat} {name:14s} {result.wall:.2f} s, "
                  f"{result.prompt_eval} prompt tokens evaluated in {result.prompt_s:.2f} s", flush=True)

    base = statistics.median(x.wall for x in runs["no-reuse"])
    paired = {k: statistics.median(nr.wall / x.wall for nr, x in zip(runs["no-reuse"], runs[k])) for k in names}
    ref_out = {pair: out for pair, out in zip(natural, runs["reuse"][0].outputs)}
    print()
    print(f"## (b) Judge phase: 4 candidates, {len(natural)} ordered pairs, max_tokens {max_tokens}, "
          f"temperature 0.3, seed {seed}, top_logprobs 5; median of {repeat}, interleaved\n")
    print("| variant | median wall s per phase | s per call | of which prompt decode s | prompt tokens (nominal) | prompt tokens reported "
          "| prompt tokens evaluated "
          "| verdict-step tokens evaluated | generated tokens | speed-up vs no-reuse | paired speed-up "
          "| same verdicts as reuse |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|")
    for k in names:
        xs = runs[k]
        wall = statistics.median(x.wall for x in xs)
        pairs = natural if k != "reuse-schedule" else schedule
        verdicts_same = sum(parse_verdict(out[0]) == parse_verdict(ref_out[p][0])
                            for x in xs for p, out in zip(pairs, x.outputs))
        total = len(pairs) * len(xs)
        print(f"| {k} | {wall:.2f} | {wall / len(natural):.3f} | {statistics.median(x.prompt_s for x in xs):.2f} | {xs[0].nominal_prompt} | {xs[0].reported_prompt} | "
              f"{statistics.median(x.prompt_eval for x in xs):.0f} | {statistics.median(x.verdict_eval for x in xs):.0f} | "
              f"{statistics.median(x.completion for x in xs):.0f} | {base / wall:.2f}x | {paired[k]:.2f}x | "
              f"{verdicts_same}/{total} |")
    print("\nnominal = tokens of the 12 judge prompts; reported = Completion.prompt_tokens summed (the "
          "backend adds the 'Verdict:' tail to it, and it does not reflect cache reuse); evaluated = tokens "
          "actually decoded for the prompts; verdict-step = tokens decoded by next_token_logits.")
    probs_same = all(x.outputs == runs["reuse"][0].outputs for x in runs["reuse"] + runs["no-reuse"])
    print(f"\nOutputs (text and verdict probabilities) identical across reuse and no-reuse runs: "
          f"{'yes' if probs_same else 'no'}.")
    verdicts = [parse_verdict(t) for t, _ in runs["reuse"][0].outputs]
    print("Verdicts (reuse, first run), pairs in natural order: "
          + " ".join(f"{i}{j}:{v}" for (i, j), v in zip(natural, verdicts)))


# -- main -----------------------------------------------------------------------------------------

async def main_async(args: argparse.Namespace) -> None:
    import llama_cpp

    path, fmt = resolve_model("smollm2-135m", Settings.from_env())
    model = LoadedModel(path=path, format=fmt, n_threads=args.threads)
    backend = LlamaCppBackend(model=model)
    load = time.perf_counter()
    model.llm()
    load = time.perf_counter() - load
    counter = EvalCounter()
    counter.install(model)
    print(f"# llama.cpp node path: {path.name} ({fmt}), n_threads={args.threads}, n_ctx={model.n_ctx}, "
          f"n_batch={model.n_batch}\n")
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}; llama-cpp-python {llama_cpp.__version__}; "
          f"model load {load:.2f} s")
    print(f"llama.cpp: {llama_cpp.llama_print_system_info().decode().strip()}\n")
    t0 = time.perf_counter()
    if args.part in ("gen", "all"):
        await bench_generation(backend, counter, args.repeat, args.max_tokens)
        print()
    if args.part in ("judge", "all"):
        await bench_judge(backend, counter, args.judge_repeat, args.judge_max_tokens, args.seed)
    print(f"\nTotal benchmark time {time.perf_counter() - t0:.0f} s.")
    await backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="repeats per variant in (a) (default 5)")
    parser.add_argument("--judge-repeat", type=int, default=2, help="repeats per variant in (b) (default 2)")
    parser.add_argument("--part", choices=("all", "gen", "judge"), default="all")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp n_threads (default 2)")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens to generate in (a) (default 128)")
    parser.add_argument("--judge-max-tokens", type=int, default=32, help="judge max_tokens in (b) (default 32)")
    parser.add_argument("--seed", type=int, default=7, help="judge sampling seed (default 7)")
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
