"""Errors at the HTTP edge, all answered in OpenAI's shape: ``{"error": {message, type, param, code}}``.

:class:`APIError` is what routes raise; :func:`from_swarm_error` turns a library error
(:class:`~swarmrank.errors.SwarmError`) into one; :func:`install_handlers` makes every other
failure (bad JSON, wrong field types, unknown paths, bugs) answer in the same shape, never with a
traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from swarmrank.errors import (
    AmbiguousRoundId,
    ConfigError,
    LedgerBroken,
    NodeError,
    RoundError,
    RoundNotFound,
    StorageError,
    SwarmError,
    TrustError,
)
from swarmrank.server.schemas import ErrorDetail, ErrorResponse
from swarmrank.store import MIN_PREFIX

log = logging.getLogger("swarmrank.server")

NO_RETRY = {"x-should-retry": "false"}
"""Tells the official clients not to retry: a failed round would only be rerun at full cost."""

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description} for status, description in {
        400: "malformed JSON, a wrong field or an unsupported message",
        401: "missing, incorrect or revoked API key",
        404: "unknown model (protocol)",
        413: "request body over the size limit",
        429: "rate limit reached (see Retry-After)",
        502: "no node produced a usable answer",
        504: "the round ran past the request timeout or its deadline",
    }.items()
}
"""OpenAPI ``responses`` entries for the errors the routes answer."""


def encodable(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode (lone surrogates such as ``\\ud800``, which a JSON
    string may spell) written as a backslash escape, so an error that quotes the caller's input can
    always be sent."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class APIError(Exception):
    """An error to answer with ``status`` and an OpenAI error body."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = ErrorDetail(message=encodable(message), type=type,
                                  param=None if param is None else encodable(param), code=code)
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return ErrorResponse(error=self.detail).model_dump(mode="json")

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def round_lookup_error(exc: RoundNotFound | AmbiguousRoundId, asked: str) -> APIError:
    """The answer to a round id (or prefix) ``asked`` that names no round, or several."""
    if isinstance(exc, AmbiguousRoundId):
        return APIError(400, f"round prefix {asked!r} is ambiguous; give more characters",
                        param="round_id", code="ambiguous_round_id")
    hint = f" (a prefix needs at least {MIN_PREFIX} characters)" if 0 < len(exc.key) < MIN_PREFIX else ""
    return APIError(404, f"no round {asked!r}{hint}", param="round_id", code="round_not_found")


def from_swarm_error(exc: SwarmError) -> APIError:
    """The HTTP answer to a library error, by its type (messages that name the database stay in the log)."""
    if isinstance(exc, (RoundNotFound, AmbiguousRoundId)):
        return round_lookup_error(exc, exc.key)
    if isinstance(exc, LedgerBroken):  # the operator's problem, not the caller's: say which entry
        log.error("ledger: %s", exc)
        return APIError(503, str(exc), type="server_error", code="ledger_broken")
    if isinstance(exc, (ConfigError, TrustError)):
        return APIError(400, str(exc), code="invalid_request")
    if isinstance(exc, RoundError):
        return APIError(504, str(exc), type="timeout_error", code="round_deadline", headers=NO_RETRY)
    if isinstance(exc, StorageError):
        log.error("storage error: %s", exc)
        return APIError(503, "the round store is unavailable (see the server log)", type="server_error",
                        code="storage_error")
    if isinstance(exc, NodeError):
        return APIError(502, str(exc), type="server_error", code="node_error", headers=NO_RETRY)
    return APIError(500, str(exc), type="server_error", code="swarm_error")


def _validation_message(exc: RequestValidationError, request: Request) -> APIError:
    errors = exc.errors()
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        reason = first.get("ctx", {}).get("error", "invalid JSON")
        return APIError(400, f"the request body is not valid JSON ({reason})", code="invalid_json")
    if tuple(first.get("loc", ())) == ("body",):
        # FastAPI parses a body as JSON only when its Content-Type says so; otherwise it validates the raw bytes
        if first.get("type") == "missing":
            return APIError(400, "the request body is empty: send a JSON object with 'model' and 'messages'",
                            code="invalid_request")
        if isinstance(first.get("input"), (bytes, bytearray)):
            sent = request.headers.get("content-type")
            return APIError(400, "the request body must be JSON sent with 'Content-Type: application/json' "
                                 f"({f'not {sent!r}' if sent else 'the header is missing'})",
                            code="invalid_content_type")
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    where = ".".join(loc) or "body"
    if first.get("type") == "extra_forbidden":  # as OpenAI answers a field it does not define
        return APIError(400, f"Unrecognized request argument supplied: {where}", param=where,
                        code="unknown_parameter")
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    value = first.get("input")
    got = f", got {value!r}" if isinstance(value, (str, int, float, bool)) and len(repr(value)) <= 60 else ""
    return APIError(400, f"invalid request: {where}: {first.get('msg', 'invalid value')}{got}{more}",
                    param=where, code="invalid_value")


def _unparsable(cause: BaseException) -> str:
    """Why a body that FastAPI could not parse was refused."""
    if isinstance(cause, UnicodeDecodeError):
        return "it is not UTF-8"
    if isinstance(cause, RecursionError):
        return "it is nested too deeply"
    return str(cause).split(";")[0][:120] or type(cause).__name__


def install_handlers(app: FastAPI) -> None:
    """Answer every error in OpenAI's shape."""

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, APIError)
        return exc.response()

    async def swarm_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SwarmError)
        return from_swarm_error(exc).response()

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _validation_message(exc, request).response()

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = None
        if exc.status_code == 404:
            message = f"unknown path {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        elif exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI's "There was an error parsing the body": JSON that json.loads cannot take
            message, code = f"the request body is not valid JSON ({_unparsable(exc.__cause__)})", "invalid_json"
        else:
            message = str(exc.detail)
        return APIError(exc.status_code, message, code=code, headers=dict(exc.headers or {})).response()

    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return APIError(500, "internal server error (details are in the server log)", type="server_error",
                        code="internal_error").response()

    app.add_exception_handler(APIError, api_error)
    app.add_exception_handler(SwarmError, swarm_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, bug)
