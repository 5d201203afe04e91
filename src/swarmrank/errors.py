"""Every error swarmrank raises on purpose.

The tree is shallow and grouped by where a failure arises::

    SwarmError
    ├── ConfigError          the swarm config, a CLI argument or an unknown name is wrong
    │   └── ModelNotFoundError   a GGUF model file or model package is missing
    ├── NodeError            one node failed to answer (carries ``node``)
    │   ├── NodeTimeoutError     it ran past its per-node timeout or the round deadline
    │   ├── EndpointError        an OpenAI-compatible endpoint or a node agent refused or could not be reached
    │   └── SignatureError       a node agent's reply is unsigned, mis-signed, replayed or from the wrong key
    ├── RequestRefused       a node agent will not serve a request (carries ``kind``)
    ├── WireError            a request body is not a JSON object the node protocol can sign (also a ValueError)
    ├── RoundError           a round could not produce an answer (e.g. every node failed)
    ├── RankingError         aggregation got data it cannot rank
    ├── SandboxError         code cannot be run safely here (no bubblewrap, or it refused to start)
    ├── StorageError         the database could not be read or written
    │   ├── RoundNotSavedError   a round finished but could not be saved (carries ``result``)
    │   ├── RoundNotFound        no stored round has this id or prefix (carries ``key``)
    │   ├── AmbiguousRoundId     several stored rounds start with this prefix (carries ``key``, ``matches``)
    │   └── ApiKeyError          an API key name is taken, or has no active key
    ├── LedgerError          the ledger refused an entry or an import, or a stored entry cannot be read
    │   ├── LedgerConflict       an append conditioned on the ledger's head lost to another writer
    │   └── LedgerBroken         a stored entry fails verification: trust is not built on it (carries ``seq``)
    └── TrustError           stake or admission forbids it (a stake out of bounds, no admitted node)
        └── ReplayError          replaying the ledger does not reproduce a recorded value

The CLI and the server catch ``SwarmError`` at their edge and turn it into a one-line message (the
server picks its status code from the error's type); anything else is a bug and keeps its traceback.
Every exception class swarmrank defines is here, except the server's ``APIError``
(:mod:`swarmrank.server.errors`), which is an HTTP response in the making, not a library error.
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
    """An OpenAI-compatible endpoint or a node agent refused the request or could not be reached."""


class SignatureError(NodeError):
    """A node agent's reply was refused: unsigned, mis-signed, replayed, or from the wrong node or key."""


class RequestRefused(SwarmError):
    """A node agent will not serve this request: it names another node, or a role the node does not have.

    ``kind`` is ``"wrong_node"`` or ``"role"``.
    """

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class WireError(SwarmError, ValueError):
    """A request or reply body that is not a JSON object the node protocol can sign (answered with 400)."""


class RoundError(SwarmError):
    """A round could not produce an answer."""


class RankingError(SwarmError):
    """Aggregation failed (bad comparison data, no convergence)."""


class SandboxError(SwarmError):
    """Code cannot be run safely here: the sandbox (bubblewrap) is missing or refused to start."""


class StorageError(SwarmError):
    """The database could not be read or written."""


class RoundNotSavedError(StorageError):
    """A round finished but could not be saved; its result is kept on the error, not lost."""

    def __init__(self, message: str, *, result: object) -> None:
        super().__init__(message)
        self.result = result


class RoundNotFound(StorageError):
    """No stored round has the id (or unique prefix) ``key``."""

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


class AmbiguousRoundId(StorageError):
    """``matches`` stored rounds start with the prefix ``key``; more characters are needed."""

    def __init__(self, message: str, *, key: str, matches: int) -> None:
        super().__init__(message)
        self.key = key
        self.matches = matches


class ApiKeyError(StorageError):
    """An API key name already has an active key, or has none to revoke."""


class LedgerError(SwarmError):
    """The ledger refused an entry or an import, or a stored entry cannot be read (see :mod:`swarmrank.ledger`)."""


class LedgerConflict(LedgerError):
    """An append conditioned on the ledger's head found that another writer got there first."""


class LedgerBroken(LedgerError):
    """A stored entry fails verification (hash, chain link, signature), or entries this process had
    verified are gone: no trust state is built past entry ``seq``, and trusted rounds are refused.

    ``kept_head`` is the hash of entry ``seq`` as this process verified it when that entry was cut
    off or changed since: the ledger alone may still verify, and ``ledger verify --head`` with it
    shows the break."""

    def __init__(self, message: str, *, seq: int, kept_head: str | None = None) -> None:
        super().__init__(message)
        self.seq = seq
        self.kept_head = kept_head


class TrustError(SwarmError):
    """Stake or admission forbids what was asked: a stake out of bounds, no admitted node to ask."""


class ReplayError(TrustError):
    """Replaying the ledger does not reproduce a recorded value."""
