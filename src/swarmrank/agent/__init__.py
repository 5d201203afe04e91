"""Node agents: one node served on its own, signing every completion (``swarmrank node serve``).

:mod:`swarmrank.agent.wire` is the wire format (shared with the coordinator's ``remote`` backend,
:mod:`swarmrank.nodes.remote`); :mod:`swarmrank.agent.core` the agent itself; the HTTP app is
:func:`swarmrank.agent.app.create_agent_app` (needs fastapi; imported only from there).
See ``docs/node-agent.md``.
"""

from swarmrank.agent.core import NodeAgent, RequestRefused, agent_from_config
from swarmrank.agent.wire import PROTOCOL, CompleteReply, CompleteRequest, IdentityReply, NodeSignature

__all__ = ["PROTOCOL", "CompleteReply", "CompleteRequest", "IdentityReply", "NodeAgent", "NodeSignature",
           "RequestRefused", "agent_from_config"]
