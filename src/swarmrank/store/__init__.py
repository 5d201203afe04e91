"""The store: swarmrank's SQL database — rounds, and the engine every other table's code uses.

* :mod:`swarmrank.store.engine` — URLs, engines, :func:`migrate`, and :class:`Database`, the
  public transaction API (``read``, ``write``, ``transaction``) with one-line
  :class:`~swarmrank.errors.StorageError` messages;
* :mod:`swarmrank.store.schema` — the shared declarative :class:`Base` and the rounds tables;
* :mod:`swarmrank.store.migrations` — the schema's history as alembic revisions;
* :mod:`swarmrank.store.rounds` — :class:`Store`: a database with the rounds on top.

Tables live next to the code that uses them: the ledger in :mod:`swarmrank.ledger`, evaluation
runs and the completion cache in :mod:`swarmrank.eval.store`, API keys in :mod:`swarmrank.server.keys`.
"""

from swarmrank.store.engine import SQLITE_BUSY_TIMEOUT_MS, Database, make_engine, migrate, safe_url
from swarmrank.store.rounds import MIN_PREFIX, RoundSummary, Store
from swarmrank.store.schema import AnswerRow, Base, CandidateRow, JudgmentRow, RoundRow

__all__ = [
    "MIN_PREFIX",
    "SQLITE_BUSY_TIMEOUT_MS",
    "AnswerRow",
    "Base",
    "CandidateRow",
    "Database",
    "JudgmentRow",
    "RoundRow",
    "RoundSummary",
    "Store",
    "make_engine",
    "migrate",
    "safe_url",
]
