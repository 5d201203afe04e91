"""A node served by a node agent (``swarmrank node serve``) elsewhere; every reply must be signed.

Options: ``url`` (required: the agent's base URL, e.g. ``http://127.0.0.1:9101``), ``node`` (the
node id the agent must have; default: the id it gives on first contact), ``public_key`` (64 hex
digits: pin the agent's Ed25519 key; default: trust on first use, below), ``timeout`` (seconds,
default 120), ``max_reply_bytes`` (default 4 MiB).

Each call sends a fresh nonce and checks, before the completion is used, that the reply

* is signed (a ``signature`` and a ``public_key``),
* answers *this* request: the nonce and request digest are ours (not a replay of an older reply),
* comes from the expected node id and the expected key, and
* carries a valid Ed25519 signature over the canonical signed content (``docs/node-agent.md``).

Otherwise the call raises :class:`SignatureError` and the round records the node's call as failed.

Trust on first use: without ``public_key``, the first verified reply from a URL fixes the node id
and key expected there, in memory and in ``SWARMRANK_HOME/known_nodes.json`` (like ssh's
``known_hosts``), so later runs refuse a different key at that URL. The first contact itself is
not authenticated; pin ``public_key`` where that matters.

Errors, all :class:`~swarmrank.errors.NodeError`::

    NodeError
    ├── NodeTimeoutError   the agent did not answer within the call's timeout
    ├── EndpointError      the agent could not be reached, closed the connection, or answered an error
    │                      (502: its backend failed; 504: its backend ran past the timeout we sent)
    └── SignatureError     the reply is unsigned, mis-signed, replayed, from another node or key
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from swarmrank.errors import ConfigError, EndpointError, NodeTimeoutError, SignatureError, WireError
from swarmrank.identity import check_node_id
from swarmrank.nodes.base import Backend, BuildContext, Completion, CompletionRequest
from swarmrank.plugins import hookimpl
from swarmrank.wire import (
    HEX_KEY_PATTERN,
    OPTIONAL_REQUEST_FIELDS,
    CompleteReply,
    NodeSignature,
    canonical,
    reply_content,
    request_digest,
    verify_signature,
    wire_context,
)

KNOWN_NODES_FILE = "known_nodes.json"


class SignedCompletion(Completion):
    """A completion with the agent's signature over it (``signature.node`` is who signed).

    ``signature`` is an attribute, not a dataclass field: code that rebuilds a plain
    :class:`Completion` from its fields (the evaluation cache) keeps working, and
    ``dataclasses.replace`` gives a copy without it.
    """

    signature: NodeSignature | None = None

    @classmethod
    def signed(cls, signature: NodeSignature, **fields: Any) -> SignedCompletion:
        completion = cls(**fields)
        object.__setattr__(completion, "signature", signature)
        return completion


class KnownNodes:
    """Trust on first use: agent URL → (node id, public key), kept in a JSON file (None: in memory only).

    The file is re-read before each write and replaced atomically; the first entry for a URL wins.
    """

    _lock = threading.Lock()  # one process-wide lock: every backend may share the file

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._memory: dict[str, dict[str, str]] = {}

    def _read(self) -> dict[str, dict[str, str]]:
        if self.path is None or not self.path.exists():
            return dict(self._memory)
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
                raise ValueError("not an object of objects")
        except (OSError, ValueError) as exc:
            raise SignatureError(f"{self.path} is unreadable ({exc}); refusing to trust node agents on first use "
                                 "until it is fixed or removed") from None
        return data

    def get(self, url: str) -> tuple[str, str] | None:
        with self._lock:
            entry = self._read().get(url)
        return None if entry is None else (str(entry.get("node")), str(entry.get("public_key")))

    def remember(self, url: str, node: str, public_key: str) -> tuple[str, str]:
        """Record ``url``'s node and key unless it is known already; return what is on record now."""
        with self._lock:
            data = self._read()
            if url not in data:
                data[url] = {"node": node, "public_key": public_key,
                             "first_seen": datetime.now(timezone.utc).isoformat(timespec="seconds")}
                self._memory = data
                if self.path is not None:
                    self._write(data)
            entry = data[url]
        return str(entry["node"]), str(entry["public_key"])

    def _write(self, data: dict[str, dict[str, str]]) -> None:
        assert self.path is not None
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise SignatureError(f"cannot record the node agent's key in {self.path}: {exc.strerror or exc}") from None


@dataclass
class RemoteBackend(Backend):
    """Completions from a node agent, accepted only with a valid signature from the expected node and key."""

    url: str
    node: str | None = None
    public_key: str | None = None
    timeout: float = 120.0
    max_reply_bytes: int = 4 * 1024 * 1024
    known: KnownNodes = field(default_factory=lambda: KnownNodes(None))
    name: str = "remote"
    _client: Any = field(default=None, repr=False)
    _client_loop: Any = field(default=None, repr=False)
    _pinned: tuple[str, str] | None = field(default=None, repr=False)  # (node, key) verified at this URL

    def describe(self) -> str:
        who = self.node or "?"
        key = f", key {self.public_key[:16]}" if self.public_key else ""
        return f"remote({who} @ {self.url}{key})"

    def cache_identity(self) -> str:
        return f"remote({self.node} @ {self.url}, key {self.public_key})"

    def client(self) -> Any:
        """The HTTP client of the running event loop (a pool cannot outlive the loop it was made on)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            import httpx

            self._client = httpx.AsyncClient(base_url=self.url, timeout=self.timeout,
                                             headers={"content-type": "application/json"})
            self._client_loop = loop
        return self._client

    def expected(self) -> tuple[str | None, str | None]:
        """(node id, public key) a reply must have: the configured ones, else those first seen at this URL."""
        node, key = self.node, self.public_key
        if key is None:
            known = self._pinned or self.known.get(self.url)
            if known is not None:
                if node is not None and known[0] != node:
                    raise SignatureError(f"the agent at {self.url} is on record as node {known[0]!r} (in "
                                         f"{self.known.path or 'memory'}), but this node expects {node!r}")
                node, key = self._pinned = known
        return node, key

    async def complete(self, request: CompletionRequest) -> Completion:
        start = time.perf_counter()
        node, key = self.expected()
        nonce = secrets.token_hex(16)
        body = {"nonce": nonce, "node": node, "messages": [
                    {"role": m.role, "content": m.content} for m in request.messages],
                "purpose": request.purpose, "temperature": float(request.temperature),
                "max_tokens": int(request.max_tokens), "seed": request.seed, "stop": list(request.stop),
                "top_logprobs": request.top_logprobs, "context": wire_context(request.context)}
        for name, default in OPTIONAL_REQUEST_FIELDS.items():
            value = getattr(request, name)
            if value != default:
                body[name] = dict(value) if name == "json_schema" else value
        timeout = self.timeout if request.timeout is None else min(self.timeout, request.timeout)
        body["timeout"] = float(timeout)
        try:
            digest = request_digest(body)
            payload = canonical(body)
        except (WireError, ValueError) as exc:
            raise EndpointError(f"cannot send this request to the agent at {self.url}: {exc}") from None
        reply = await self._post(payload, timeout)
        why = self._check(reply, node=node, key=key, nonce=nonce, digest=digest)
        if why is not None:
            raise SignatureError(f"rejected the reply of the agent at {self.url}: {why}")
        assert reply.public_key is not None and reply.signature is not None
        if key is None:  # trust on first use: the first verified (node, key) at this URL is the one kept
            on_record = await asyncio.to_thread(self.known.remember, self.url, reply.node, reply.public_key)
            if on_record != (reply.node, reply.public_key):
                raise SignatureError(f"rejected the reply of the agent at {self.url}: node {reply.node!r} with key "
                                     f"{reply.public_key[:16]}… but {on_record[0]!r} with key {on_record[1][:16]}… "
                                     "was seen there first")
            self._pinned = on_record
        return SignedCompletion.signed(
            text=reply.text, prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
            seconds=time.perf_counter() - start, finish_reason=reply.finish_reason, cached_tokens=reply.cached_tokens,
            choice_probs=reply.choice_probs,
            signature=NodeSignature(node=reply.node, public_key=reply.public_key, nonce=reply.nonce,
                                    request=reply.request, signature=reply.signature))

    @staticmethod
    def _check(reply: CompleteReply, *, node: str | None, key: str | None, nonce: str, digest: str) -> str | None:
        """Why ``reply`` must be refused, or None when it is a valid signature for this request."""
        if not reply.signature or not reply.public_key:
            return "it is not signed"
        if node is not None and reply.node != node:
            return f"it is signed as node {reply.node!r}, not {node!r}"
        if reply.nonce != nonce or reply.request != digest:
            return "it answers another request (its nonce or request digest is not ours: a replayed reply?)"
        if key is not None and reply.public_key != key:
            return (f"it is signed with key {reply.public_key[:16]}…, but node {reply.node!r} is pinned to key "
                    f"{key[:16]}…")
        if not verify_signature(reply.public_key, reply_content(reply, node=reply.node, nonce=nonce, request=digest),
                                reply.signature):
            return f"its signature does not verify with key {reply.public_key[:16]}… (forged, or altered in transit)"
        return None

    async def _post(self, payload: bytes, timeout: float) -> CompleteReply:
        import httpx

        where = f"the agent at {self.url}"
        try:
            async with self.client().stream("POST", "/v1/node/complete", content=payload,
                                            timeout=httpx.Timeout(timeout + 1.0, connect=min(timeout, 10.0))) as resp:
                raw = b""
                async for chunk in resp.aiter_bytes():
                    raw += chunk
                    if len(raw) > self.max_reply_bytes:
                        raise EndpointError(f"{where} sent a reply over {self.max_reply_bytes} bytes")
        except httpx.TimeoutException:
            raise NodeTimeoutError(f"{where} did not answer within {timeout:g}s") from None
        except httpx.ConnectError as exc:
            raise EndpointError(f"cannot reach {where}: {exc or 'connection refused'}") from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise EndpointError(f"{where} closed the connection before answering "
                                f"({exc or type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise EndpointError(f"{where} failed: {type(exc).__name__}: {exc}") from None
        if resp.status_code != 200:  # a 504 too: the agent's message says which limit passed
            raise EndpointError(f"{where} answered {resp.status_code}: {_error_message(raw)}")
        try:
            return CompleteReply.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise SignatureError(f"{where} sent a reply that is not a completion "
                                 f"({'.'.join(str(p) for p in first['loc']) or 'body'}: {first['msg']})") from None

    async def close(self) -> None:
        if self._client is not None and self._client_loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = self._client_loop = None


def _error_message(raw: bytes) -> str:
    try:
        return str(json.loads(raw)["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return raw[:200].decode("utf-8", "replace") or "no body"


_OPTIONS = {"url", "node", "public_key", "timeout", "max_reply_bytes"}


def build(options: Mapping[str, Any], ctx: BuildContext) -> RemoteBackend:
    import re

    unknown = set(options) - _OPTIONS
    if unknown:
        raise ConfigError(f"unknown remote option(s): {', '.join(sorted(unknown))}")
    url = str(options.get("url") or "").rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError("a remote node needs 'url', the agent's http:// or https:// address")
    key = options.get("public_key")
    if key is not None and not re.fullmatch(HEX_KEY_PATTERN, str(key)):
        raise ConfigError(f"remote public_key must be 64 lowercase hex digits (an Ed25519 key), not {key!r}")
    node = options.get("node")
    timeout = float(options.get("timeout", 120.0))
    if not timeout > 0:
        raise ConfigError("remote timeout must be a positive number of seconds")
    settings = ctx.shared.get("settings")
    known = KnownNodes(settings.home / KNOWN_NODES_FILE if settings is not None else None)
    return RemoteBackend(url=url, node=None if node is None else check_node_id(str(node)),
                         public_key=None if key is None else str(key), timeout=timeout,
                         max_reply_bytes=int(options.get("max_reply_bytes", 4 * 1024 * 1024)), known=known)


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    register("remote", build)
