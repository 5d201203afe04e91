"""System names: a protocol with round options after slashes, as evaluations and simulations name them.

    parse_system("peer-rank")                      → ("peer-rank", {})
    parse_system("peer-rank/fortytwo")             → ("peer-rank", {"schedule": "fortytwo"})
    parse_system("peer-rank/adaptive/reference")   → ("peer-rank", {"schedule": "adaptive", "judge_style": "reference"})
    parse_system("peer-rank/bradley-terry")        → ("peer-rank", {"aggregation": "bradley-terry"})
    parse_system("peer-rank/legacy")               → peer-rank as it was before judge reliability:
                                                     Bradley–Terry × votes, interested judges never used

Each part after the protocol is a pair schedule, an aggregation, a judging style or ``legacy``;
every part is checked here, once, with a one-line error naming what is known.
"""

from __future__ import annotations

from typing import Any

from swarmrank.errors import ConfigError
from swarmrank.protocols import get_protocol
from swarmrank.reliability import AGGREGATIONS
from swarmrank.schedule import JUDGE_STYLES, SCHEDULES

__all__ = ["SYSTEM_OPTIONS", "parse_system"]

#: the round options each known suffix sets
SYSTEM_OPTIONS: dict[str, dict[str, Any]] = {
    **{s: {"schedule": s} for s in SCHEDULES},
    **{a: {"aggregation": a} for a in AGGREGATIONS},
    **{j: {"judge_style": j} for j in JUDGE_STYLES},
    "legacy": {"aggregation": "bradley-terry", "interested_judges": "never"},
}


def parse_system(name: str) -> tuple[str, dict[str, Any]]:
    """The protocol and the round options a system name sets; ConfigError for anything unknown."""
    protocol, *parts = name.strip().split("/")
    get_protocol(protocol)
    overrides: dict[str, Any] = {}
    for part in parts:
        if part not in SYSTEM_OPTIONS:
            raise ConfigError(f"unknown option {part!r} in {name!r} (known: {', '.join(SYSTEM_OPTIONS)})")
        for key, value in SYSTEM_OPTIONS[part].items():
            if key in overrides:
                raise ConfigError(f"{name!r} sets {key} twice")
            overrides[key] = value
    return protocol, overrides
