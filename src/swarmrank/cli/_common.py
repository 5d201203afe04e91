"""What every ``swarmrank`` command shares: the consoles, the shared options, opening the store and
the ledger, building the swarm, and turning library errors into one line.

The command modules import from here and from the library, never from each other.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperArgument, TyperCommand, TyperOption

from swarmrank.errors import SwarmError

if TYPE_CHECKING:
    from swarmrank.config import SwarmConfig
    from swarmrank.registry import Registry
    from swarmrank.store import Store
    from swarmrank.swarm import Swarm

console = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", "-c", help="swarm config TOML (default: the embedded swarm); its [store] url (or SWARMRANK_DB) "
                           "is the database used")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]
ExecutorOpt = Annotated[str | None, typer.Option(
    "--executor", help="where nodes run: local, or ray (Ray actors); overrides [executor] kind")]


class LogLevel(str, Enum):
    """uvicorn's log levels, so a typo is a usage error rather than uvicorn's traceback."""

    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"
    trace = "trace"


LogLevelOpt = Annotated[LogLevel, typer.Option("--log-level", case_sensitive=False, help="uvicorn's log level")]


def one_of(names: list[str]) -> str:
    """``a, b or c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _registry_names() -> dict[str, str]:
    """What each placeholder of :class:`RegistryHelp` stands for, read from the registries now."""
    from swarmrank.eval.datasets import suite_names
    from swarmrank.protocols import protocol_names
    from swarmrank.tasks import TaskType

    return {"{protocols}": one_of(protocol_names()), "{task_types}": one_of([t.value for t in TaskType]),
            "{suites}": one_of(suite_names())}


class RegistryHelp(TyperCommand):
    """A command whose options' help may name what the registries hold: ``{protocols}``, ``{task_types}``
    and ``{suites}`` are filled in when the help is shown, so the lists cannot go stale and the plugins
    (which register protocols) still load only when something is looked up, never at import."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        names = _registry_names()
        for param in self.params:
            if isinstance(param, (TyperOption, TyperArgument)) and param.help:
                for key, value in names.items():
                    param.help = param.help.replace(key, value)
        super().format_help(ctx, formatter)


def say(text: str) -> None:
    """One line of plain output (no markup, no highlighting)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def note(text: str, style: str | None = None) -> None:
    """One line on stderr (progress, warnings), printed as it is."""
    err.print(text, style=style, markup=False, highlight=False, soft_wrap=True)


def open_store(config: Path | None) -> Store:
    """The store a config's rounds go to (SWARMRANK_DB, else its [store] url, else the default file)."""
    from swarmrank.config import load_config
    from swarmrank.settings import Settings
    from swarmrank.store import Store

    return Store.open(Settings.from_env(), load_config(config).store.url)


def open_registry(cfg: SwarmConfig) -> tuple[Registry, Store]:
    """The ledger-backed registry for a config's database (whether or not ``[trust]`` is enabled), and that store."""
    from swarmrank.identity import load_or_create
    from swarmrank.ledger import Ledger
    from swarmrank.registry import Registry
    from swarmrank.settings import Settings
    from swarmrank.store import Store
    from swarmrank.swarm import COORDINATOR_ID

    settings = Settings.from_env()
    store = Store.open(settings, cfg.store.url)
    coordinator = load_or_create(settings.keys_dir, COORDINATOR_ID)
    return Registry(Ledger(store), coordinator, cfg.trust.params, authorities=cfg.trust.authorities or None), store


def trust_rows(cfg: SwarmConfig, node_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each node's reputation, influence, stake and admission, replayed from the ledger."""
    registry, store = open_registry(cfg)
    try:
        state = registry.state()
    finally:
        store.close()
    return {n: state.node(n).as_dict(state.params) for n in node_ids}


def without_trust(cfg: SwarmConfig) -> SwarmConfig:
    """``cfg`` with ``[trust]`` off: its nodes talked to directly (a health check, an exam)."""
    return cfg.model_copy(update={"trust": cfg.trust.model_copy(update={"enabled": False})})


def build_swarm(cfg: SwarmConfig, store: Any) -> Swarm:
    """The swarm of ``cfg`` (``store``: "default", None or a Store), saying which node keys it created."""
    from swarmrank.swarm import Swarm

    swarm = Swarm.from_config(cfg, store=store)
    if swarm.created_keys:
        err.print(f"created Ed25519 keys for {', '.join(swarm.created_keys)} in {swarm.keys_dir}", style="dim",
                  markup=False, highlight=False)
    return swarm


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_app(app: Callable[[], Any]) -> None:
    """Run the Typer app: a library error is one red line on stderr and exit status 1."""
    try:
        app()
    except SwarmError as exc:
        err.print("error: " + str(exc), style="red", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
