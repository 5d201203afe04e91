"""Wire formats: canonical JSON, digests and signatures, and the node protocol (``swarmrank-node/1``).

One place for what leaves a process signed or hashed, so that every producer and checker agrees
byte for byte:

* :func:`canonical` — the canonical JSON encoding (sorted keys, no whitespace, UTF-8, no NaN or
  infinities) that ledger entries, round digests, node contributions and node replies are hashed over;
* :func:`digest` — the hex SHA-256 of an object's canonical JSON;
* :func:`verify_bytes` — an Ed25519 signature check that answers False for anything malformed.

Used by the ledger (:mod:`swarmrank.ledger`), trust and the registry (round and contribution
digests), node agents (:mod:`swarmrank.agent`) and the coordinator's ``remote`` backend
(:mod:`swarmrank.nodes.remote`).

The node protocol — one request, one signed reply (``docs/node-agent.md`` is the reference)::

    POST /v1/node/complete   CompleteRequest  →  CompleteReply
    GET  /v1/node/identity                    →  IdentityReply

The coordinator sends a fresh ``nonce`` with every request; the request digest is the sha256 of
the canonical JSON of the whole request object as sent, nonce included. The agent signs, with its
Ed25519 key, the sha256 of the canonical JSON of :func:`signed_content`: its node id, that request
digest, the nonce and everything in the completion except timing. A reply therefore cannot be
replayed for another request, moved to another node or altered without the signature failing.

Nothing here imports fastapi or httpx: the coordinator needs this module without the server extra.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from swarmrank.errors import WireError
from swarmrank.identity import verify

__all__ = [
    "PROTOCOL",
    "CompleteReply",
    "CompleteRequest",
    "IdentityReply",
    "NodeSignature",
    "canonical",
    "digest",
    "json_safe",
    "parse_object",
    "reply_content",
    "request_digest",
    "signed_content",
    "signing_hash",
    "verify_bytes",
    "verify_signature",
    "wire_context",
]

PROTOCOL = "swarmrank-node/1"
NONCE_PATTERN = r"^[0-9a-f]{32,128}$"
HEX_KEY_PATTERN = r"^[0-9a-f]{64}$"
HEX_SIGNATURE_PATTERN = r"^[0-9a-f]{128}$"
#: context keys the coordinator never sends to a node: ground truth for evaluation and spot checks
PRIVATE_CONTEXT_KEYS = frozenset({"truth"})


# -- canonical JSON, digests, signatures ---------------------------------------------------------


def canonical(obj: Any) -> bytes:
    """The canonical JSON encoding: sorted keys, no whitespace, UTF-8, no NaN or infinities.

    Raises ``ValueError`` for a non-finite float or a lone surrogate, ``TypeError`` for a value
    JSON cannot hold.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def digest(obj: Any) -> str:
    """The hex SHA-256 of ``obj``'s canonical JSON."""
    return hashlib.sha256(canonical(obj)).hexdigest()


def verify_bytes(public_key: str, message: bytes, signature: str | bytes) -> bool:
    """True when ``signature`` (hex or raw) is the Ed25519 signature of ``public_key`` (hex) over
    ``message``; False for a wrong signature and for anything malformed (bad hex, wrong lengths)."""
    try:
        key = bytes.fromhex(public_key)
        sig = bytes.fromhex(signature) if isinstance(signature, str) else bytes(signature)
    except (ValueError, TypeError):
        return False
    if len(key) != 32 or len(sig) != 64:
        return False
    try:
        return verify(public_key, message, sig)
    except ValueError:  # a 32-byte string that is not a valid public key
        return False


# -- the node protocol ---------------------------------------------------------------------------


def request_digest(body: Mapping[str, Any]) -> str:
    """Hex sha256 of the canonical JSON of a request object (raises :class:`WireError` if it has none)."""
    try:
        return digest(dict(body))
    except (ValueError, TypeError) as exc:  # NaN, a lone surrogate, a value JSON cannot hold
        raise WireError(f"the request cannot be put in canonical JSON ({exc})") from None


def _reject_constant(name: str) -> Any:
    raise WireError(f"the request body is not valid JSON ({name} is not a JSON number)")


def parse_object(raw: bytes) -> dict[str, Any]:
    """Parse a request body: a JSON object of finite numbers and valid Unicode, or :class:`WireError`."""
    if not raw.strip():
        raise WireError("the request body is empty; send a JSON object")
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except WireError:
        raise
    except RecursionError:
        raise WireError("the request body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise WireError(f"the request body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise WireError(f"the request body must be a JSON object, not {type(data).__name__}")
    return data


_DROP = object()


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON data: tuples become lists; entries with a key that is not a string,
    a non-finite float or a value JSON cannot hold (a set, an object) are dropped."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _DROP
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            safe = json_safe(v)
            if isinstance(k, str) and safe is not _DROP:
                out[k] = safe
        return out
    if isinstance(value, (list, tuple)):
        return [s for s in (json_safe(v) for v in value) if s is not _DROP]
    return _DROP


def wire_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a request's context that may go to a remote node: JSON-safe, without ground truth."""
    safe = json_safe({k: v for k, v in context.items() if k not in PRIVATE_CONTEXT_KEYS})
    return safe if isinstance(safe, dict) else {}


class WireMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str


class CompleteRequest(BaseModel):
    """``POST /v1/node/complete``: a :class:`~swarmrank.nodes.base.CompletionRequest` plus the nonce."""

    model_config = ConfigDict(extra="forbid")
    nonce: str = Field(pattern=NONCE_PATTERN, description="fresh per request: 16-64 random bytes as lowercase hex")
    node: str | None = Field(None, description="the node id the coordinator expects; the agent refuses others")
    messages: list[WireMessage] = Field(min_length=1, max_length=256)
    purpose: Literal["answer", "grade", "judge", "rank", "revise", "probe"] = "answer"
    temperature: float = Field(0.2, ge=0.0, le=2.0)
    max_tokens: int = Field(128, ge=1, le=32768)
    seed: int | None = None
    stop: list[str] = Field(default_factory=list, max_length=16)
    top_logprobs: int | None = Field(None, ge=0, le=20)
    timeout: float | None = Field(None, gt=0.0, le=86400.0, description="seconds the call may take")
    context: dict[str, Any] = Field(default_factory=dict)
    # sampling a chat request may set, and JSON answers (sent only when set, so older agents still agree)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    response_format: Literal["text", "json"] = "text"
    json_schema: dict[str, Any] | None = None


#: the fields of CompleteRequest a coordinator sends only when they differ from their defaults
OPTIONAL_REQUEST_FIELDS = {"top_p": None, "presence_penalty": None, "frequency_penalty": None,
                           "response_format": "text", "json_schema": None}


class CompleteReply(BaseModel):
    """The agent's answer: the completion, who made it, and its signature over :func:`signed_content`."""

    model_config = ConfigDict(extra="ignore")
    protocol: str = PROTOCOL
    node: str
    public_key: str | None = None
    nonce: str
    request: str = Field(description="hex sha256 of the canonical request, as the agent computed it")
    text: str
    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)
    cached_tokens: int = Field(0, ge=0)
    finish_reason: str = "stop"
    choice_probs: dict[str, float] | None = None
    seconds: float = Field(0.0, description="the agent's time for the call (not signed)")
    signature: str | None = Field(None, description="hex Ed25519 signature of sha256(canonical(signed content))")


class IdentityReply(BaseModel):
    """``GET /v1/node/identity``: who the agent says it is (unsigned; the signatures on replies prove it)."""

    protocol: str = PROTOCOL
    node: str
    public_key: str
    roles: list[str]
    backend: str


def signed_content(*, node: str, nonce: str, request: str, text: str, prompt_tokens: int, completion_tokens: int,
                   cached_tokens: int, finish_reason: str, choice_probs: Mapping[str, float] | None) -> dict[str, Any]:
    """What an agent signs for one completion (the reply minus ``public_key``, ``seconds`` and the signature)."""
    return {"protocol": PROTOCOL, "node": node, "nonce": nonce, "request": request, "text": text,
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "cached_tokens": cached_tokens,
            "finish_reason": finish_reason, "choice_probs": None if choice_probs is None else dict(choice_probs)}


def signing_hash(content: Mapping[str, Any]) -> bytes:
    """The 32 bytes an agent signs: sha256 of the canonical JSON of the signed content."""
    return hashlib.sha256(canonical(dict(content))).digest()


def reply_content(reply: CompleteReply, *, node: str, nonce: str, request: str) -> dict[str, Any]:
    """The signed content of ``reply``, taking node, nonce and request digest from the caller, not the reply."""
    return signed_content(node=node, nonce=nonce, request=request, text=reply.text,
                          prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                          cached_tokens=reply.cached_tokens, finish_reason=reply.finish_reason,
                          choice_probs=reply.choice_probs)


def verify_signature(public_key: str, content: Mapping[str, Any], signature: str) -> bool:
    """True when ``signature`` (hex) is ``public_key``'s (hex) over ``content``; False for anything malformed."""
    try:
        message = signing_hash(content)
    except (ValueError, TypeError):  # NaN in choice_probs, a lone surrogate in the text
        return False
    return verify_bytes(public_key, message, signature)


@dataclass(frozen=True)
class NodeSignature:
    """Enough to re-check one signed completion later, with its node id, text and token counts."""

    node: str
    public_key: str
    nonce: str
    request: str
    signature: str
