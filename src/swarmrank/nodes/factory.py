"""The node factory: a ``[[nodes]]`` entry of a swarm config → a :class:`~swarmrank.nodes.base.Node`.

The one place a node is built, for the coordinator (:meth:`swarmrank.swarm.Swarm.from_config`)
and for a node agent (``swarmrank node serve``, :func:`swarmrank.agent.agent_from_config`) alike:
the backend and its options (the node's own over its model's), an adversary wrapper when the entry
asks for one, the persona, the roles and the node's Ed25519 key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from swarmrank.identity import Identity, load_or_create
from swarmrank.nodes.base import Backend, BuildContext, Node, create_backend
from swarmrank.settings import Settings

if TYPE_CHECKING:
    from swarmrank.config import NodeSection, SwarmConfig

__all__ = ["ADVERSARY_KEYS", "BackendMaker", "BuiltNode", "build_backend", "build_node"]

#: node options that wrap the node's backend in an adversary (swarmrank.nodes.adversary)
ADVERSARY_KEYS = ("adversary", "adversary_value", "adversary_seed")

#: backends whose node holds its own key elsewhere: a node agent signs every completion itself
#: (checked by the backend), so the coordinator must not make or hold a key in its name
SELF_SIGNING = ("remote",)


class BackendMaker(Protocol):
    """What builds a backend: :func:`~swarmrank.nodes.base.create_backend`, or an executor's
    ``create_backend`` (Ray actors, :mod:`swarmrank.executor`)."""

    def __call__(self, name: str, options: Mapping[str, Any], ctx: BuildContext, /) -> Backend: ...


@dataclass(frozen=True)
class BuiltNode:
    """A node and its identity (None for a self-signing node: its key is not ours)."""

    node: Node
    identity: Identity | None


def build_backend(name: str, options: Mapping[str, Any], ctx: BuildContext,
                  make: BackendMaker = create_backend) -> Backend:
    """The backend ``name`` with ``options``, wrapped in an adversary when the options name one."""
    rest = dict(options)
    adversary = {k: rest.pop(k) for k in ADVERSARY_KEYS if k in rest}
    backend = make(name, rest, ctx)
    if adversary:
        from swarmrank.nodes.adversary import wrap

        backend = wrap(backend, adversary)
    return backend


def build_node(config: SwarmConfig, section: NodeSection, *, settings: Settings, ctx: BuildContext | None = None,
               make: BackendMaker = create_backend) -> BuiltNode:
    """The node for ``section`` of ``config``: its backend (built with ``make``), persona, roles and key.

    The key is loaded from (or created in) ``settings.keys_dir``; a self-signing node (a ``remote``
    node agent) gets the public key its backend pins and no signer.
    """
    ctx = ctx if ctx is not None else BuildContext(shared={"settings": settings})
    backend_name, options = config.backend_for(section)
    backend = build_backend(backend_name, options, ctx, make)
    roles = frozenset(section.roles)
    if backend_name in SELF_SIGNING:
        public_key = getattr(backend, "public_key", "") or ""
        return BuiltNode(Node(id=section.id, backend=backend, persona=section.persona, roles=roles,
                              public_key=public_key), None)
    identity = load_or_create(settings.keys_dir, section.id)
    return BuiltNode(Node(id=section.id, backend=backend, persona=section.persona, roles=roles,
                          public_key=identity.public_hex, signer=identity.sign), identity)
