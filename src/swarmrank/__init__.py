"""swarmrank: swarm inference with peer-ranked consensus, each judge weighted by its learnt reliability.

The public surface is exactly ``__all__``; importing swarmrank loads no model and opens no file.
"""

from swarmrank.config import SwarmConfig, load_config, parse_config
from swarmrank.errors import (
    ConfigError,
    EndpointError,
    ModelNotFoundError,
    NodeError,
    NodeTimeoutError,
    RankingError,
    RoundError,
    RoundNotSavedError,
    StorageError,
    SwarmError,
)
from swarmrank.nodes.base import Backend, Completion, CompletionRequest, Message, Node, Persona, register_backend
from swarmrank.protocols import Protocol, protocol_names, register_protocol
from swarmrank.result import Answer, Candidate, Cost, Judgment, PhaseCost, Ranking, RoundResult
from swarmrank.round import RoundOptions
from swarmrank.swarm import Swarm

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "Backend",
    "Candidate",
    "Completion",
    "CompletionRequest",
    "ConfigError",
    "Cost",
    "EndpointError",
    "Judgment",
    "Message",
    "ModelNotFoundError",
    "Node",
    "NodeError",
    "NodeTimeoutError",
    "Persona",
    "PhaseCost",
    "Protocol",
    "Ranking",
    "RankingError",
    "RoundError",
    "RoundNotSavedError",
    "RoundOptions",
    "RoundResult",
    "StorageError",
    "Swarm",
    "SwarmConfig",
    "SwarmError",
    "load_config",
    "parse_config",
    "protocol_names",
    "register_backend",
    "register_protocol",
]
