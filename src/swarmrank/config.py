"""Swarm configuration: a TOML file → typed, validated objects, with one-line errors.

A config has these parts (``swarmrank config show`` prints the embedded default)::

    [swarm]            name and default protocol
    [round]            round options: exactly the fields of swarmrank.round.RoundOptions
    [store]            url = any SQLAlchemy URL (optional; SWARMRANK_DB overrides it)
    [trust]            enabled, spot_check_rate, exam_level, authorities and any field of
                       swarmrank.trust.TrustParams
    [executor]         where nodes run: kind = "local" (default) or "ray" (swarmrank.executor)
    [models.NAME]      a backend and its options, shared by every node that names the model
    [[nodes]]          id, model (or an inline backend), roles, the fields of swarmrank.nodes.base.Persona,
                       and backend options
    [prices.MODEL]     input, output, cached_input: US dollars per million tokens (swarmrank.pricing), for
                       a [models.NAME] key or a node's upstream `model`

Every setting is declared once, in the library's own option type, which the section embeds: a
field added to ``RoundOptions``, ``TrustParams`` or ``Persona`` is a config key at once, with its
default and bounds. The TOML stays flat (``[trust] eta = 0.1``, ``temperature`` on a node).
"""

from __future__ import annotations

import dataclasses
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from swarmrank.errors import ConfigError
from swarmrank.identity import check_node_id
from swarmrank.nodes.base import Persona
from swarmrank.options import describe
from swarmrank.pricing import Price
from swarmrank.round import RoundOptions
from swarmrank.trust import TrustParams

ROLES = {"answer", "judge"}


def _nest(data: Any, name: str, kind: type) -> Any:
    """Move the flat keys of ``data`` that are fields of the option type ``kind`` under ``name``,
    so that a flat TOML section fills an embedded option type."""
    if not isinstance(data, dict) or name in data:
        return data
    keys = {f.name for f in dataclasses.fields(kind)}
    return {**{k: v for k, v in data.items() if k not in keys}, name: {k: v for k, v in data.items() if k in keys}}


#: the embedded option types' field names, left out of error locations (the TOML keys are flat)
_EMBEDDED = ("persona", "params")


class SwarmSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "default"
    protocol: str = "peer-rank"


class TrustSection(BaseModel):
    """Reputation, stake and admission (swarmrank.trust); off unless ``enabled = true``. Every
    other key is a field of :class:`~swarmrank.trust.TrustParams` (``params``)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    spot_check_rate: float = Field(0.0, ge=0.0, le=1.0)  # chance of a hidden spot check after a live round
    exam_level: str = "medium"
    # the public keys that may write trust entries (docs/ledger.md); empty: this coordinator's own key
    authorities: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(default_factory=list)
    params: TrustParams = Field(default_factory=TrustParams)

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        return _nest(data, "params", TrustParams)


class StoreSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = None


class ExecutorSection(BaseModel):
    """Where node backends run (swarmrank.executor): in this process, or as Ray actors."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["local", "ray"] = "local"
    address: str = "auto"  # ray: "auto" (a running cluster), "local" (start one), "HOST:PORT", "ray://HOST:PORT"
    replicas: int = Field(1, ge=1)  # ray: actors per model; a model or node may set its own `replicas`
    num_cpus: float | None = Field(None, ge=0)  # ray: CPUs reserved per actor (default: Ray's)


class ModelSection(BaseModel):
    model_config = ConfigDict(extra="allow")
    backend: str

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class NodeSection(BaseModel):
    """One ``[[nodes]]`` entry: id, model or inline backend, roles, the :class:`Persona` fields
    (``persona``), and any other key as a backend option."""

    model_config = ConfigDict(extra="allow")
    id: str
    model: str | None = None
    backend: str | None = None
    roles: list[str] = Field(default_factory=lambda: ["answer", "judge"])
    persona: Persona = Field(default_factory=Persona)

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        return _nest(data, "persona", Persona)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        try:
            return check_node_id(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        bad = set(value) - ROLES
        if bad or not value:
            raise ValueError(f"roles must be a non-empty subset of {sorted(ROLES)}")
        return value

    @model_validator(mode="after")
    def _model_or_backend(self) -> NodeSection:
        if self.model is None and self.backend is None:
            raise ValueError("give 'model' (a [models.NAME] entry) or an inline 'backend'")
        return self

    def options(self) -> dict[str, Any]:
        """Backend options given on the node; with an inline backend, 'model' is one of them."""
        extra = dict(self.model_extra or {})
        if self.backend is not None and self.model is not None:
            extra["model"] = self.model
        return extra


class SwarmConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    swarm: SwarmSection = Field(default_factory=SwarmSection)
    round: RoundOptions = Field(default_factory=RoundOptions)
    store: StoreSection = Field(default_factory=StoreSection)
    trust: TrustSection = Field(default_factory=TrustSection)
    executor: ExecutorSection = Field(default_factory=ExecutorSection)
    models: dict[str, ModelSection] = Field(default_factory=dict)
    nodes: list[NodeSection]
    prices: dict[str, Price] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_refs(self) -> SwarmConfig:
        seen: set[str] = set()
        for node in self.nodes:
            if node.id in seen:
                raise ValueError(f"node id {node.id!r} appears twice")
            seen.add(node.id)
            if node.backend is None and node.model not in self.models:
                raise ValueError(f"node {node.id!r} names model {node.model!r}, "
                                 f"which has no [models.{node.model}] entry")
        if not self.nodes:
            raise ValueError("a swarm needs at least one node")
        if self.round.synthesizer and self.round.synthesizer not in seen:
            raise ValueError(f"[round] synthesizer {self.round.synthesizer!r} is not a node of this swarm "
                             f"(nodes: {', '.join(sorted(seen))})")
        strangers = sorted(set(self.round.judge_priors) - seen)
        if strangers:
            raise ValueError(f"[round] judge_priors names {', '.join(map(repr, strangers))}, which is not a node "
                             f"of this swarm (nodes: {', '.join(sorted(seen))})")
        upstream = (self.backend_for(n)[1].get("model") for n in self.nodes)
        named = set(self.models) | {str(m) for m in upstream if m is not None}
        unused = sorted(set(self.prices) - named)
        if unused:
            raise ValueError(f"[prices] names {', '.join(map(repr, unused))}, which no [models.NAME] entry or "
                             "node's 'model' is")
        return self

    def node_prices(self) -> dict[str, Price]:
        """Node id → its price: the ``[prices]`` entry of its ``[models.NAME]`` key, else of its upstream ``model``."""
        out: dict[str, Price] = {}
        for node in self.nodes:
            upstream = self.backend_for(node)[1].get("model")
            for name in (node.model if node.backend is None else None, upstream):
                if name is not None and str(name) in self.prices:
                    out[node.id] = self.prices[str(name)]
                    break
        return out

    def backend_for(self, node: NodeSection) -> tuple[str, dict[str, Any]]:
        """(backend name, options) for one node; node options override the model's."""
        if node.backend is None:
            assert node.model is not None
            model = self.models[node.model]
            return model.backend, {**model.options(), **node.options()}
        return node.backend, node.options()


def _format_error(source: str, exc: ValidationError) -> str:
    where, message = describe(exc, skip=_EMBEDDED)
    return f"{source}: {where + ': ' if where else ''}{message}"


def parse_config(data: dict[str, Any], source: str = "config") -> SwarmConfig:
    try:
        return SwarmConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(source, exc)) from None


def default_config_text() -> str:
    return files("swarmrank").joinpath("default_swarm.toml").read_text(encoding="utf-8")


def load_config(path: str | Path | None = None) -> SwarmConfig:
    """Load a swarm config file, or the embedded default swarm when ``path`` is None."""
    if path is None:
        text, source = default_config_text(), "embedded default config"
    else:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist")
        if not p.is_file():
            raise ConfigError(f"config file {p} is not a file (a swarm config is a TOML file)")
        try:
            text, source = p.read_text(encoding="utf-8"), str(p)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {p}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return parse_config(data, source)
