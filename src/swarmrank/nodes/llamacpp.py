"""In-process GGUF models through llama-cpp-python.

One model file is loaded once per swarm and shared by every persona that names it; calls to one
model are serialised by a lock (a llama.cpp context is not re-entrant) and run in a worker thread
so the event loop stays free (one worker thread per model, first come first served). Consecutive
prompts that share a prefix (the same question, the same first solution) reuse llama.cpp's KV
cache, which is why the round orders judge calls by prefix.

Verdict probabilities: llama-cpp-python only returns logprobs when every position's logits are
kept (``logits_all``, several times slower). Instead, after the judge's short reasoning we append
``Verdict:`` and read the next-token logits of " A", " B" and " U" from one extra decode: the
verdict is the most probable letter and its probability is recorded.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from swarmrank.errors import ConfigError, ModelNotFoundError, NodeError, NodeTimeoutError
from swarmrank.nodes.base import Backend, BuildContext, Completion, CompletionRequest, Message
from swarmrank.plugins import hookimpl
from swarmrank.settings import Settings

VERDICT_LETTERS = ("A", "B", "U")
BASE_STOPS = ("\n### ", "\nQuestion:", "\n\n\n")


BASE_EXAMPLE = (
    "### Question:\nHow many legs do 2 cats have?\n"
    "Think briefly, then end with a line 'Answer: N' where N is a number.\n\n"
    "### Response:\nEach cat has 4 legs, and 2 × 4 = 8.\nAnswer: 8"
)


def format_base_prompt(messages: Sequence[Message], *, example: bool = True) -> str:
    """A completion-style prompt for base models (no chat template), with one worked example."""
    parts: list[str] = []
    for message in messages:
        if message.role == "system":
            parts.append(message.content.strip())
            if example:
                parts.append(BASE_EXAMPLE)
        elif message.role == "user":
            parts.append(f"### Question:\n{message.content.strip()}")
        else:
            parts.append(f"### Response:\n{message.content.strip()}")
    return "\n\n".join(parts) + "\n\n### Response:\n"


_LOG_CALLBACK: Any = None
# llama-cpp-python silences a model load by pointing file descriptors 1 and 2 at /dev/null and
# back. Two loads in parallel threads interleave those swaps and can leave stdout pointing at
# /dev/null for good, so loads are serialised process-wide.
_LOAD_LOCK = threading.Lock()


def _silence_llama_log() -> None:
    """llama.cpp prints load-time notes to stderr even with verbose=False; route them nowhere."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is None:
        import llama_cpp

        _LOG_CALLBACK = llama_cpp.llama_log_callback(lambda level, text, user_data: None)
        llama_cpp.llama_log_set(_LOG_CALLBACK, None)


@dataclass
class LoadedModel:
    """A llama.cpp model shared by several nodes, with the lock that serialises its use."""

    path: Path
    format: str
    n_ctx: int = 2048
    n_threads: int | None = None
    n_batch: int = 256
    lock: threading.Lock = field(default_factory=threading.Lock)
    # one worker per model: calls run in submission order (a plain lock is not fair), so the
    # round's prefix-sorted judge calls really reach llama.cpp back to back
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp"))
    _llm: Any = None
    _chat: Any = None

    def llm(self) -> Any:
        if self._llm is None:
            with _LOAD_LOCK:
                if self._llm is None:
                    self._load()
        return self._llm

    def _load(self) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ConfigError(f"llama-cpp-python is not installed ({exc}); run scripts/setup") from None
        _silence_llama_log()
        if not self.path.is_file():
            raise ModelNotFoundError(f"model file {self.path} does not exist")
        try:
            llm = Llama(model_path=str(self.path), n_ctx=self.n_ctx, n_threads=self.n_threads,
                        n_batch=self.n_batch, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelNotFoundError(f"could not load {self.path}: {exc}") from None
        if self.format == "chat":
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            template = llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise ConfigError(f"{self.path.name} has no chat template; set format = \"base\"")
            self._chat = Jinja2ChatFormatter(
                template=template,
                eos_token=llm._model.token_get_text(llm.token_eos()),
                bos_token=llm._model.token_get_text(llm.token_bos()),
            )
        self._llm = llm  # published last: other threads check it without the lock

    def unload(self) -> None:
        """Free the model's memory; the next call loads it again."""
        with _LOAD_LOCK:
            llm, self._llm = self._llm, None
        if llm is not None:
            self.executor.submit(llm.close).result()  # on the worker: never under a running call

    def prompt(self, messages: Sequence[Message], *, example: bool = True) -> tuple[str, list[str]]:
        self.llm()
        if self.format == "base":
            return format_base_prompt(messages, example=example), list(BASE_STOPS)
        response = self._chat(messages=[{"role": m.role, "content": m.content} for m in messages])
        stops = response.stop if isinstance(response.stop, list) else [response.stop]
        return response.prompt, [s for s in stops if s]

    def letter_tokens(self) -> dict[str, list[int]]:
        llm = self.llm()
        table: dict[str, list[int]] = {}
        for letter in VERDICT_LETTERS:
            ids = set()
            for variant in (f" {letter}", letter):
                toks = llm.tokenize(variant.encode(), add_bos=False, special=False)
                if len(toks) == 1:
                    ids.add(toks[0])
            table[letter] = sorted(ids)
        return table

    def cached_prefix(self, prompt: str) -> int:
        """How many of ``prompt``'s tokens the KV cache already holds (llama-cpp-python reuses them)."""
        llm = self.llm()
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        prefix = 0
        for a, b in zip(llm.input_ids[: llm.n_tokens], tokens):
            if a != b:
                break
            prefix += 1
        return min(prefix, max(len(tokens) - 1, 0))

    def next_token_logits(self, text: str) -> np.ndarray:
        """Logits for the token after ``text``, reusing the KV cache for the shared prefix."""
        llm = self.llm()
        tokens = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        prefix = self.cached_prefix(text)
        llm.n_tokens = prefix
        llm.eval(tokens[prefix:])
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()


def json_grammar(schema: Mapping[str, Any] | None) -> Any:
    """A llama.cpp grammar that only lets the model write a JSON object (matching ``schema`` when given)."""
    import json

    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    try:
        if schema is not None:
            return LlamaGrammar.from_json_schema(json.dumps(dict(schema)), verbose=False)
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)  # its root is an object
    except (ValueError, RuntimeError, TypeError) as exc:
        raise NodeError(f"llama.cpp cannot turn this JSON Schema into a grammar: {exc}") from None


@dataclass
class LlamaCppBackend(Backend):
    model: LoadedModel
    name: str = "llamacpp"
    queues_calls: bool = True  # personas share the model's one worker; timeouts run from the start

    def describe(self) -> str:
        return f"llamacpp({self.model.path.name}, {self.model.format})"

    def unload(self) -> None:
        self.model.unload()

    def cache_identity(self) -> str:
        path = self.model.path.resolve()
        size = path.stat().st_size if path.exists() else -1
        return f"llamacpp({path}, {size} bytes, {self.model.format}, n_ctx={self.model.n_ctx})"

    async def complete(self, request: CompletionRequest) -> Completion:
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.model.executor, self._complete, request, cancel)
        except asyncio.CancelledError:
            cancel.set()  # the worker stops at its next token and frees the model
            raise

    def _complete(self, request: CompletionRequest, cancel: threading.Event) -> Completion:
        with self.model.lock:
            if cancel.is_set():
                raise NodeError("cancelled before start")
            start = time.perf_counter()
            llm = self.model.llm()
            prompt, stops = self.model.prompt(request.messages,
                                              example=request.purpose in ("answer", "revise", "probe"))
            judging = request.purpose == "judge" and request.top_logprobs is not None
            stop = list(dict.fromkeys([*stops, *request.stop, *(["Verdict", "verdict:"] if judging else [])]))
            cached = self.model.cached_prefix(prompt)
            limit = request.timeout

            def stopping(_ids: Any, _logits: Any) -> bool:
                return cancel.is_set() or (limit is not None and time.perf_counter() - start > limit)

            sampling: dict[str, Any] = {k: getattr(request, k) for k in ("top_p", "presence_penalty",
                                                                         "frequency_penalty")
                                        if getattr(request, k) is not None}
            if request.response_format == "json":
                sampling["grammar"] = json_grammar(request.json_schema)
            try:
                from llama_cpp import StoppingCriteriaList

                out = llm.create_completion(
                    prompt=prompt, max_tokens=request.max_tokens, temperature=request.temperature,
                    seed=request.seed if request.seed is not None else -1, stop=stop or None,
                    stopping_criteria=StoppingCriteriaList([stopping]), **sampling,
                )
            except ValueError as exc:  # e.g. the prompt does not fit the context
                raise NodeError(f"llama.cpp refused the request: {exc}") from None
            if cancel.is_set():
                raise NodeError("cancelled")
            if limit is not None and time.perf_counter() - start > limit:
                raise NodeTimeoutError(f"timeout after {limit:.1f}s")
            choice = out["choices"][0]
            text = choice["text"]
            usage = out["usage"]
            prompt_tokens, completion_tokens = usage["prompt_tokens"], usage["completion_tokens"]
            probs = None
            if judging:
                text, probs, extra = self._verdict(prompt, text)
                prompt_tokens += extra
            return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                              seconds=time.perf_counter() - start, finish_reason=choice.get("finish_reason") or "stop",
                              cached_tokens=cached, choice_probs=probs)

    def _verdict(self, prompt: str, reasoning: str) -> tuple[str, dict[str, float], int]:
        reasoning = reasoning.rstrip()
        tail = "\nVerdict:"
        logits = self.model.next_token_logits(prompt + reasoning + tail)
        table = self.model.letter_tokens()
        scores = np.array([np.logaddexp.reduce(logits[ids]) if ids else -np.inf
                           for ids in (table[letter] for letter in VERDICT_LETTERS)], dtype=float)
        scores -= scores.max()
        probs = np.exp(scores) / np.exp(scores).sum()
        verdict = VERDICT_LETTERS[int(np.argmax(probs))]
        return (f"{reasoning}\nVerdict: {verdict}", {k: float(p) for k, p in zip(VERDICT_LETTERS, probs)},
                len(self.model.llm().tokenize(tail.encode(), add_bos=False)))


_OPTIONS = {"source", "path", "format", "n_ctx", "n_threads", "n_batch"}


def build(options: Mapping[str, Any], ctx: BuildContext) -> LlamaCppBackend:
    from swarmrank.nodes.models import resolve_model

    unknown = set(options) - _OPTIONS
    if unknown:
        raise ConfigError(f"unknown llamacpp option(s): {', '.join(sorted(unknown))}")
    if ("source" in options) == ("path" in options):
        raise ConfigError("a llamacpp model needs exactly one of 'source' (a packaged model) or 'path' (a GGUF file)")
    settings: Settings = ctx.shared.get("settings") or Settings.from_env()
    if "source" in options:
        path, fmt = resolve_model(str(options["source"]), settings)
    else:
        path, fmt = Path(str(options["path"])).expanduser(), "chat"
        if not path.is_file():
            raise ModelNotFoundError(f"model file {path} does not exist")
    fmt = str(options.get("format", fmt))
    if fmt not in ("chat", "base"):
        raise ConfigError(f"llamacpp format must be 'chat' or 'base', not {fmt!r}")
    key = ("llamacpp", str(path), fmt, options.get("n_ctx", 2048), options.get("n_threads"),
           options.get("n_batch", 256))
    cache: dict[Any, LoadedModel] = ctx.shared.setdefault("llamacpp_models", {})
    if key not in cache:
        cache[key] = LoadedModel(path=path, format=fmt, n_ctx=int(options.get("n_ctx", 2048)),
                                 n_threads=options.get("n_threads"), n_batch=int(options.get("n_batch", 256)))
    return LlamaCppBackend(model=cache[key])


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    register("llamacpp", build)
