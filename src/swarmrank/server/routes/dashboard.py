"""The dashboard: ``GET /dashboard`` (a self-contained page) and the JSON endpoints it reads.

* ``GET /chat``: a page to ask the swarm and watch the round live, from the stream.
* ``GET /dashboard`` and ``GET /dashboard/static/{file}``: the pages' HTML, scripts and style,
  served from the package (no CDN, no external URL) and never with round data in them, so they
  need no key. A strict Content-Security-Policy allows only this origin's script and style.
* ``GET /v1/rounds?limit=N``: recent rounds, newest first.
* ``GET /v1/rounds/{id}/analysis``: one round with what the page draws — the pairwise verdict
  matrix, the strengths with their intervals and the judge × pair table (:func:`analyse`).
* ``GET /v1/reputation``: every node's reputation after each round, from the ledger.

The JSON endpoints follow the server's auth rules (a bearer key unless ``--no-auth``). The page
takes its key from the URL *fragment* (``/dashboard#key=sr-…``: browsers never send fragments,
so the key reaches no server or proxy log), keeps it in ``sessionStorage``, drops it from the
address bar and sends it as ``Authorization: Bearer``; without one it asks for it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from swarmrank.errors import StorageError
from swarmrank.ledger import Ledger
from swarmrank.result import RoundResult
from swarmrank.server.deps import CallerDep, ServerState, StateDep
from swarmrank.server.errors import ERROR_RESPONSES, APIError, from_swarm_error
from swarmrank.server.routes.rounds import get_round
from swarmrank.server.schemas import ErrorResponse

router = APIRouter(tags=["dashboard"])

Z95 = 1.96
"""Half-width of a 95% interval in standard errors."""

STATIC_TYPES = {
    "dashboard.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "chat.html": "text/html; charset=utf-8",
    "chat.js": "text/javascript; charset=utf-8",
}
"""The only files served from ``server/static`` (a fixed list: no path from the request reaches the disk)."""

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}

_API_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "a query parameter out of range or of the wrong type"},
    401: ERROR_RESPONSES[401], 429: ERROR_RESPONSES[429]}


# -- wire schemas ---------------------------------------------------------------------------------


class RoundListItem(BaseModel):
    round_id: str
    created_at: datetime
    protocol: str
    question: str
    answer: str | None
    confidence: float
    calls: int
    wall_seconds: float


class RoundList(BaseModel):
    object: str = "list"
    data: list[RoundListItem]


class Item(BaseModel):
    """What the judges compared: a candidate (cluster schedule) or one node's answer (fortytwo)."""

    index: int
    label: str = Field(description="the extracted answer, with the node under the fortytwo schedule")
    candidate: int | None = Field(description="index into the round's candidates")
    nodes: list[str]


class MatrixCell(BaseModel):
    """Verdicts on one pair, in both orders, seen from the row: ``share`` = (wins + ties / 2) / total, so the
    two cells of a pair sum to 1 (null when the pair was not judged)."""

    wins: int = 0
    losses: int = 0
    ties: int = 0
    total: int = 0
    share: float | None = None


class StrengthBar(BaseModel):
    candidate: int
    answer: str
    strength: float
    log_strength: float | None
    stderr: float | None
    low: float | None = Field(description=f"log_strength - {Z95}·stderr, when stderr is known")
    high: float | None


class JudgeCell(BaseModel):
    verdict: str
    preferred: int | None = Field(description="the item the verdict prefers; null for a tie or a failed call")
    reasoning: str
    weight: float
    failed: bool


class JudgeRow(BaseModel):
    judge: str
    cells: list[list[JudgeCell]] = Field(description="one list per entry of ``pairs`` (usually 0 or 1 verdict)")


class JudgeTable(BaseModel):
    pairs: list[tuple[int, int]] = Field(description="ordered (first shown as A, second as B) item pairs")
    rows: list[JudgeRow]


class RoundAnalysis(BaseModel):
    round: RoundResult
    items: list[Item]
    matrix: list[list[MatrixCell]] = Field(description="matrix[i][j]: verdicts preferring item i over item j")
    strengths: list[StrengthBar]
    judges: JudgeTable
    problems: list[str] = Field(default_factory=list, description="judgments the analysis could not place")


class ReputationPoint(BaseModel):
    seq: int
    round_id: str | None
    after: float
    at: str | None = Field(description="when the entry was written (ISO 8601); null for an in-memory ledger")


class NodeReputation(BaseModel):
    node: str
    series: list[ReputationPoint]


class Reputation(BaseModel):
    enabled: bool = Field(description="trust is on for the served swarm")
    nodes: list[NodeReputation]


# -- the analysis (pure) --------------------------------------------------------------------------


def compared_items(result: RoundResult) -> list[Item]:
    """The items judgments index: usable answers under the fortytwo schedule, else candidates."""
    if result.schedule == "fortytwo":
        usable = [a for a in result.answers if a.candidate is not None]
        return [Item(index=i, label=f"{a.node}: {a.value}", candidate=a.candidate, nodes=[a.node])
                for i, a in enumerate(usable)]
    return [Item(index=i, label=c.answer, candidate=i, nodes=list(c.nodes)) for i, c in enumerate(result.candidates)]


def preferred(first: int, second: int, verdict: str) -> int | None:
    return first if verdict == "A" else second if verdict == "B" else None


def analyse(result: RoundResult) -> RoundAnalysis:
    """What the dashboard draws for one round.

    ``matrix[i][j]`` counts the counted (not failed) verdicts on the pair {i, j}, shown in either
    order: ``wins`` preferred i, ``losses`` preferred j, ``ties`` neither; a tie is half a win for each
    side in ``share``, so ``share[i][j] + share[j][i] = 1``. Strength intervals are
    ``log_strength ± 1.96·stderr`` (Bradley–Terry θ) where the fit gave a standard error.
    """
    items = compared_items(result)
    n = len(items)
    matrix = [[MatrixCell() for _ in range(n)] for _ in range(n)]
    pairs: list[tuple[int, int]] = []
    cells: dict[str, dict[tuple[int, int], list[JudgeCell]]] = {}
    outside = 0
    for j in result.judgments:
        if not (0 <= j.first < n and 0 <= j.second < n) or j.first == j.second:
            outside += 1
            continue
        pair = (j.first, j.second)
        if pair not in pairs:
            pairs.append(pair)
        cells.setdefault(j.judge, {}).setdefault(pair, []).append(JudgeCell(
            verdict=j.verdict, preferred=None if j.failed else preferred(j.first, j.second, j.verdict),
            reasoning=j.reasoning, weight=j.weight, failed=j.failed))
        if j.failed:
            continue
        for row, col in (pair, pair[::-1]):
            cell = matrix[row][col]
            cell.total += 1
            if j.verdict == "U":
                cell.ties += 1
            elif preferred(j.first, j.second, j.verdict) == row:
                cell.wins += 1
            else:
                cell.losses += 1
    for cells_of_row in matrix:
        for cell in cells_of_row:
            cell.share = (cell.wins + cell.ties / 2) / cell.total if cell.total else None
    pairs.sort()
    judges = JudgeTable(pairs=pairs, rows=[JudgeRow(judge=judge, cells=[by_pair.get(p, []) for p in pairs])
                                           for judge, by_pair in sorted(cells.items())])
    strengths = [StrengthBar(
        candidate=i, answer=c.answer, strength=c.strength, log_strength=c.log_strength, stderr=c.stderr,
        low=None if c.log_strength is None or c.stderr is None else c.log_strength - Z95 * c.stderr,
        high=None if c.log_strength is None or c.stderr is None else c.log_strength + Z95 * c.stderr,
    ) for i, c in enumerate(result.candidates)]
    problems = [f"{outside} judgment(s) name items outside the round's {n} and are left out"] if outside else []
    return RoundAnalysis(round=result, items=items, matrix=matrix, strengths=strengths, judges=judges,
                         problems=problems)


def reputation_series(entries: list[Any]) -> list[NodeReputation]:
    """Per node (sorted by id), its reputation after each ``reputation`` ledger entry, in seq order."""
    series: dict[str, list[ReputationPoint]] = {}
    for entry in sorted(entries, key=lambda e: e.seq):
        if entry.kind != "reputation":
            continue
        p = entry.payload
        series.setdefault(str(p["node"]), []).append(ReputationPoint(
            seq=entry.seq, round_id=p.get("round_id"), after=float(p["after"]), at=getattr(entry, "created_at", None)))
    return [NodeReputation(node=node, series=points) for node, points in sorted(series.items())]


# -- the page ---------------------------------------------------------------------------------------


@lru_cache(maxsize=len(STATIC_TYPES))
def static_file(name: str) -> bytes:
    return resources.files("swarmrank.server").joinpath("static", name).read_bytes()


def _static(name: str) -> Response:
    return Response(static_file(name), media_type=STATIC_TYPES[name], headers=SECURITY_HEADERS)


@router.get("/dashboard", include_in_schema=False)
async def dashboard() -> Response:
    """The page (no key needed: it holds no data; it reads the JSON endpoints with the user's key)."""
    return _static("dashboard.html")


@router.get("/chat", include_in_schema=False)
async def chat_page() -> Response:
    """The chat page: ask the swarm and watch the round live (it streams /v1/chat/completions)."""
    return _static("chat.html")


@router.get("/dashboard/static/{name}", include_in_schema=False)
async def dashboard_static(name: str) -> Response:
    if name not in STATIC_TYPES:
        raise APIError(404, f"unknown path /dashboard/static/{name}")
    return _static(name)


# -- the JSON it reads ------------------------------------------------------------------------------


def _store(state: ServerState) -> Any:
    if state.store is None:
        raise APIError(404, "this server keeps no rounds (it has no store)", code="round_not_found")
    return state.store


@router.get("/v1/rounds", response_model=RoundList, responses=_API_ERRORS)
async def list_rounds(state: StateDep, caller: CallerDep,
                      limit: int = Query(20, ge=1, le=500, description="how many rounds, newest first"),
                      protocol: str | None = Query(None, description="only rounds of this protocol")) -> RoundList:
    """Recent rounds of this server's store, newest first (the columns of ``swarmrank history``)."""
    store = _store(state)
    try:
        rounds = await asyncio.to_thread(store.list_rounds, limit, protocol)
    except StorageError as exc:
        raise from_swarm_error(exc) from None
    return RoundList(data=[RoundListItem(**vars(r)) for r in rounds])


@router.get("/v1/rounds/{round_id}/analysis", response_model=RoundAnalysis, responses={
    **_API_ERRORS, 404: {"description": "no such round"}, 400: {"description": "an ambiguous id prefix"}})
async def round_analysis(round_id: str, state: StateDep, caller: CallerDep) -> RoundAnalysis:
    """The stored round with its verdict matrix, strength intervals and judge × pair table."""
    return analyse(await get_round(round_id, state, caller))


@router.get("/v1/reputation", response_model=Reputation, responses=_API_ERRORS)
async def reputation(state: StateDep, caller: CallerDep,
                     limit: int = Query(10_000, ge=1, le=100_000,
                                        description="at most this many of the latest reputation entries"),
                     ) -> Reputation:
    """Each node's reputation after every round it took part in, from the ledger's reputation entries."""
    registry = state.swarm.registry
    ledger = registry.ledger if registry is not None else Ledger(state.store) if state.store is not None else None
    if ledger is None:
        return Reputation(enabled=False, nodes=[])

    policy = registry.policy if registry is not None else None

    def read() -> list[Any]:
        if not isinstance(ledger, Ledger):
            return list(ledger.entries(kind="reputation"))[-limit:]
        entries = ledger.last(limit, kind="reputation")
        if policy is None:
            return entries
        keys = ledger.public_keys()  # entries from keys that are not trust authorities moved no reputation
        return [e for e in entries if keys.get(e.signer) in policy.authorities]

    try:
        entries = await asyncio.to_thread(read)
    except StorageError as exc:
        raise from_swarm_error(exc) from None
    return Reputation(enabled=registry is not None, nodes=reputation_series(entries))
