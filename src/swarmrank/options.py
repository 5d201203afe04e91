"""Validated option types: one declaration per setting, its default and its bounds.

:func:`options` makes a class a frozen pydantic dataclass. Such a type is the single source of a
group of settings: the swarm config embeds it (``[round]`` is :class:`~swarmrank.round.RoundOptions`,
``[trust]`` holds :class:`~swarmrank.trust.TrustParams`, each ``[[nodes]]`` entry a
:class:`~swarmrank.nodes.base.Persona`), library callers construct it, and ``dataclasses.replace``
re-validates a changed copy. So a new setting is one annotated field::

    @options
    class RoundOptions:
        judges_per_pair: Annotated[int, Field(ge=1)] = 2

Constructed directly, a bad value raises :class:`~swarmrank.errors.ConfigError` with one line
(``judges_per_pair: Input should be greater than or equal to 1``); inside a config file the same
check reports the file and the key (:func:`swarmrank.config.parse_config`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform

import pydantic
from pydantic import ConfigDict, ValidationError

from swarmrank.errors import ConfigError

__all__ = ["describe", "options"]

_T = TypeVar("_T")

#: pydantic calls an unknown keyword of a dataclass "unexpected"; a config file says what a model says
_MESSAGES = {"unexpected_keyword_argument": "Extra inputs are not permitted"}


def describe(exc: ValidationError, *, skip: tuple[str, ...] = ()) -> tuple[str, str]:
    """(where, what) of the first error: its dotted location (leaving out ``skip``) and its message,
    with how many more errors there are."""
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"] if p not in skip and p != "function-after")
    message = _MESSAGES.get(first["type"], first["msg"]).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return where, message + more


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, pydantic.Field))
def options(cls: type[_T]) -> type[_T]:
    """Make ``cls`` a frozen, validated option type (see the module docstring)."""
    # every number finite: an inf influence or vote prior gave NaN posteriors mid-round
    config = ConfigDict(extra="forbid", allow_inf_nan=False)
    validated: Any = pydantic.dataclasses.dataclass(frozen=True, config=config)(cls)
    init: Callable[..., None] = validated.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except ValidationError as exc:
            where, message = describe(exc)
            # a validator's own message names the setting; pydantic's generic ones need the field
            own = exc.errors()[0]["type"] == "value_error"
            raise ConfigError(message if own or not where else f"{where}: {message}") from None

    validated.__init__ = __init__
    return validated
