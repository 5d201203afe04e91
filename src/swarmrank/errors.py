"""Every error swarmrank raises on purpose.

The tree is shallow and grouped by where a failure arises::

    SwarmError
    ├── ConfigError          the swarm config, a CLI argument or an unknown name is wrong
    │   └── ModelNotFoundError   a GGUF model file or model package is missing
    ├── NodeError            one node failed to answer (carries ``node``)
    │   ├── NodeTimeoutError     it ran past its per-node timeout or the round deadline
    │   └── EndpointError        an OpenAI-compatible endpoint refused or could not be reached
    ├── RoundError           a round could not produce an answer (e.g. every node failed)
    ├── RankingError         aggregation got data it cannot rank
    └── StorageError         the database could not be read or written
        └── RoundNotSavedError   a round finished but could not be saved (carries ``result``)

The CLI and the server catch ``SwarmError`` at their edge and turn it into a one-line message;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SwarmError(Exception):
    """Root of every swarmrank error."""


class ConfigError(SwarmError):
    """The swarm config, an argument or a name given by the user is wrong."""


class ModelNotFoundError(ConfigError):
    """A GGUF model file, or the package that ships it, is missing."""


class NodeError(SwarmError):
    """A node failed to produce a completion."""

    def __init__(self, message: str, *, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node


class NodeTimeoutError(NodeError):
    """A node ran past its per-node timeout or the round's deadline."""


class EndpointError(NodeError):
    """An OpenAI-compatible endpoint refused the request or could not be reached."""


class RoundError(SwarmError):
    """A round could not produce an answer."""


class RankingError(SwarmError):
    """Aggregation failed (bad comparison data, no convergence)."""


class StorageError(SwarmError):
    """The database could not be read or written."""


class RoundNotSavedError(StorageError):
    """A round finished but could not be saved; its result is kept on the error, not lost."""

    def __init__(self, message: str, *, result: object) -> None:
        super().__init__(message)
        self.result = result


class LedgerError(SwarmError):
    """The ledger refused an entry or an import, or a stored entry cannot be read (see :mod:`swarmrank.ledger`)."""
