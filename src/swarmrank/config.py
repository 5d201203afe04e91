"""Swarm configuration: a TOML file → typed, validated objects, with one-line errors.

A config has four parts (``swarmrank config show`` prints the embedded default)::

    [swarm]            name and default protocol
    [round]            round options (schedule, judges per pair, timeouts, k, rounds, prior)
    [store]            url = any SQLAlchemy URL (optional; SWARMRANK_DB overrides it)
    [executor]         where nodes run: kind = "local" (default) or "ray" (swarmrank.executor)
    [models.NAME]      a backend and its options, shared by every node that names the model
    [[nodes]]          id, model (or an inline backend), roles, persona, backend options
"""

from __future__ import annotations

import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from swarmrank.errors import ConfigError
from swarmrank.identity import check_node_id
from swarmrank.reliability import AGGREGATIONS, KAPPA_MAX
from swarmrank.schedule import INTERESTED, JUDGE_STYLES, SCHEDULES

PERSONA_KEYS = {"system", "temperature", "max_tokens", "judge_max_tokens", "seed"}
ROLES = {"answer", "judge"}


class SwarmSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "default"
    protocol: str = "peer-rank"


class RoundSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schedule: str = "cluster"
    judges_per_pair: int = Field(2, ge=1)
    max_full_pairs: int = Field(8, ge=2)
    node_timeout: float = Field(120.0, gt=0)
    deadline: float = Field(600.0, gt=0)
    max_answer_chars: int = Field(4000, ge=1)
    k: int = Field(3, ge=1)
    max_samples: int = Field(24, ge=1)
    rounds: int = Field(2, ge=0)
    goodbad: bool = True
    prior: float = Field(0.1, gt=0)
    soft_verdicts: bool = True  # count a judgment by its verdict distribution when the backend gives it
    vote_weighted: bool = True  # cluster schedule: a candidate's strength ∝ its votes × its Bradley–Terry strength
    influence: dict[str, float] = Field(default_factory=dict)  # judge id → weight in Bradley–Terry (default 1)
    # peer-rank's aggregation and judge reliability (swarmrank.reliability; docs/protocols.md)
    aggregation: str = "evidence"       # or "bradley-terry" (votes × Bradley–Terry strength, before 0.2)
    vote_prior: float = Field(0.5, ge=0)   # nats of evidence one vote carries (the prior mean, when learnt)
    learn_vote_prior: bool = True          # learn what a vote is worth from how well votes predicted verdicts
    judge_prior_kappa: float = Field(0.7, gt=0, lt=1)
    judge_prior_weight: float = Field(4.0, gt=0)
    judge_prior_null: float = Field(0.5, ge=0, lt=1)
    consensus_floor: float = Field(0.3, ge=0, le=KAPPA_MAX)
    self_bias: float = Field(0.5, ge=0, lt=1)    # P(a judge backs its own answer whatever its merit)
    caution: float = Field(0.5, ge=0, le=3)       # decide with each judge's discrimination at mean − caution·sd
    judge_priors: dict[str, float] = Field(default_factory=dict)  # judge id → prior discrimination κ you know of
    reliability_memory: float = Field(200.0, ge=1)
    learn_reliability: bool = True
    interested_judges: str = "fill"     # or "never"
    judge_style: str = "compare"        # or "reference"
    stop_at: float = Field(0.95, gt=0.5, le=1)   # adaptive schedule
    max_judge_calls: int = Field(0, ge=0)          # adaptive schedule (0: no cap beyond every judge once per pair)

    @field_validator("influence")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in value.items() if not v >= 0]
        if bad:
            raise ValueError(f"influence must be a non-negative number (check {', '.join(bad)})")
        return value

    @field_validator("judge_priors")
    @classmethod
    def _kappas(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in value.items() if not 0 < v <= KAPPA_MAX]
        if bad:
            raise ValueError(f"judge_priors must be discriminations in (0, {KAPPA_MAX}] (check {', '.join(bad)})")
        return value

    @field_validator("schedule")
    @classmethod
    def _known_schedule(cls, value: str) -> str:
        if value not in SCHEDULES:
            raise ValueError(f"unknown schedule {value!r} (known: {', '.join(SCHEDULES)})")
        return value

    @field_validator("aggregation", "interested_judges", "judge_style")
    @classmethod
    def _known_choice(cls, value: str, info: Any) -> str:
        known = {"aggregation": AGGREGATIONS, "interested_judges": INTERESTED, "judge_style": JUDGE_STYLES}[info.field_name]
        if value not in known:
            raise ValueError(f"unknown {info.field_name} {value!r} (known: {', '.join(known)})")
        return value


class TrustSection(BaseModel):
    """Reputation, stake and admission (swarmrank.trust); off unless ``enabled = true``."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    spot_check_rate: float = Field(0.0, ge=0.0, le=1.0)  # chance of a hidden spot check after a live round
    exam_level: str = "medium"
    eta: float = Field(0.05, gt=0)
    eta_truth: float = Field(0.5, gt=0)
    decay: float = Field(0.01, gt=0, lt=1)
    w_min: float = Field(0.1, gt=0, lt=1)
    w_max: float = Field(3.0, gt=1)
    min_stake: float = Field(5.0, ge=0)
    deposit: float = Field(10.0, ge=0)
    max_stake: float = Field(20.0, ge=0)
    clear: float = Field(0.95, gt=0.5, lt=1)

    def params(self) -> Any:
        from swarmrank.trust import TrustParams

        return TrustParams(eta=self.eta, eta_truth=self.eta_truth, decay=self.decay, w_min=self.w_min, w_max=self.w_max,
                           min_stake=self.min_stake, deposit=self.deposit, max_stake=self.max_stake, clear=self.clear)


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
    model_config = ConfigDict(extra="allow")
    id: str
    model: str | None = None
    backend: str | None = None
    roles: list[str] = Field(default_factory=lambda: ["answer", "judge"])
    system: str = ""
    temperature: float = Field(0.2, ge=0, le=2)
    max_tokens: int = Field(128, ge=1)
    judge_max_tokens: int = Field(96, ge=1)
    seed: int = 0

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
    round: RoundSection = Field(default_factory=RoundSection)
    store: StoreSection = Field(default_factory=StoreSection)
    trust: TrustSection = Field(default_factory=TrustSection)
    executor: ExecutorSection = Field(default_factory=ExecutorSection)
    models: dict[str, ModelSection] = Field(default_factory=dict)
    nodes: list[NodeSection]

    @model_validator(mode="after")
    def _check_refs(self) -> SwarmConfig:
        seen: set[str] = set()
        for node in self.nodes:
            if node.id in seen:
                raise ValueError(f"node id {node.id!r} appears twice")
            seen.add(node.id)
            if node.backend is None and node.model not in self.models:
                raise ValueError(f"node {node.id!r} names model {node.model!r}, which has no [models.{node.model}] entry")
        if not self.nodes:
            raise ValueError("a swarm needs at least one node")
        return self

    def backend_for(self, node: NodeSection) -> tuple[str, dict[str, Any]]:
        """(backend name, options) for one node; node options override the model's."""
        if node.backend is None:
            assert node.model is not None
            model = self.models[node.model]
            return model.backend, {**model.options(), **node.options()}
        return node.backend, node.options()


def _format_error(source: str, exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"] if p not in ("function-after",))
    message = err["msg"].removeprefix("Value error, ")
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}: {where + ': ' if where else ''}{message}{more}"


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
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            text, source = p.read_text(encoding="utf-8"), str(p)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {p}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return parse_config(data, source)
