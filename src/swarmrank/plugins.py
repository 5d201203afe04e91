"""Plugins: protocols, node backends and dataset loaders, discovered through entry points.

The extension points are three `pluggy <https://pluggy.readthedocs.io/>`_ hooks, each called with a
``register`` callback (as `llm <https://llm.datasette.io/>`_'s plugins are)::

    from swarmrank.plugins import hookimpl

    @hookimpl
    def register_protocols(register):          # register(protocol): a swarmrank.protocols.Protocol
        register(FirstAnswer())

    @hookimpl
    def register_backends(register):           # register(name, factory): backend = "<name>" in configs
        register("echo", build_echo)

    @hookimpl
    def register_dataset_loaders(register):    # register(name, loader): load("<name>:<args>")
        register("mine", load_mine)

A package makes such a module a plugin by naming it under the ``swarmrank`` entry-point group::

    [project.entry-points.swarmrank]
    my_plugin = "my_package.swarmrank_plugin"

The built-ins are plugins too (:data:`BUILTIN_PLUGINS`), registered through the same hooks. The
plugins are loaded once per process, the first time a protocol, a backend or a loader is looked up
or registered (never at import time); a plugin that fails to import is a one-line
:class:`~swarmrank.errors.ConfigError`. ``register_protocol``, ``register_backend`` and
``register_loader`` still add one at run time.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import pluggy

from swarmrank.errors import ConfigError

__all__ = ["BUILTIN_PLUGINS", "ENTRY_POINT_GROUP", "hookimpl", "hookspec", "load", "plugin_manager"]

ENTRY_POINT_GROUP = "swarmrank"
"""The entry-point group a package names its swarmrank plugins under."""

hookspec = pluggy.HookspecMarker(ENTRY_POINT_GROUP)
hookimpl = pluggy.HookimplMarker(ENTRY_POINT_GROUP)

BUILTIN_PLUGINS = (
    "swarmrank.synthesis",  # before protocols: pluggy calls later registrations first, and these list last
    "swarmrank.protocols",
    "swarmrank.nodes.llamacpp",
    "swarmrank.nodes.openai_compat",
    "swarmrank.nodes.scripted",
    "swarmrank.nodes.remote",
    "swarmrank.eval.datasets",
    "swarmrank.eval.bigbench",
    "swarmrank.eval.humaneval",
    "swarmrank.eval.openended",
)
"""Modules whose hooks register what swarmrank ships (imported by name, when plugins load)."""


class Hooks:
    """The hook specifications: what a plugin may implement."""

    @hookspec
    def register_protocols(self, register: Callable[[Any], None]) -> None:
        """Call ``register(protocol)`` for each :class:`~swarmrank.protocols.Protocol` the plugin adds."""

    @hookspec
    def register_backends(self, register: Callable[[str, Any], None]) -> None:
        """Call ``register(name, factory)`` for each backend; ``factory(options, ctx)`` returns a
        :class:`~swarmrank.nodes.base.Backend` (see :func:`swarmrank.nodes.base.register_backend`)."""

    @hookspec
    def register_dataset_loaders(self, register: Callable[[str, Any], None]) -> None:
        """Call ``register(name, loader)`` for each evaluation dataset loader; ``loader(args)`` returns
        the items of the spec ``"<name>:<args>"`` (see :func:`swarmrank.eval.datasets.register_loader`)."""


_lock = threading.RLock()
_manager: pluggy.PluginManager | None = None
_called: set[str] = set()


def plugin_manager() -> pluggy.PluginManager:
    """The process's plugin manager: every installed plugin, then the built-ins (made on first call).

    pluggy calls the most recently registered plugin first, so the built-ins, registered last,
    register first: their names come first in every listing.
    """
    global _manager
    with _lock:
        if _manager is None:
            manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
            manager.add_hookspecs(Hooks)
            for entry in entry_points(group=ENTRY_POINT_GROUP):
                try:
                    plugin = entry.load()
                except Exception as exc:  # a broken plugin: say which, in one line
                    raise ConfigError(f"the swarmrank plugin {entry.name!r} ({entry.value}) failed to load: "
                                      f"{type(exc).__name__}: {exc}") from None
                if manager.is_registered(plugin):
                    continue
                manager.register(plugin, name=entry.name)
            for name in BUILTIN_PLUGINS:
                manager.register(importlib.import_module(name), name=name)
            _manager = manager
        return _manager


def load(hook: str, register: Callable[..., None]) -> None:
    """Call ``hook`` of every plugin with ``register``, once per process (later calls do nothing)."""
    with _lock:
        if hook in _called:
            return
        _called.add(hook)
        try:
            getattr(plugin_manager().hook, hook)(register=register)
        except BaseException:
            _called.discard(hook)
            raise
