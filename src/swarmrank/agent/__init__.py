"""Node agents: one node served on its own, signing every completion (``swarmrank node serve``).

:mod:`swarmrank.agent.core` is the agent itself; its wire format (shared with the coordinator's
``remote`` backend, :mod:`swarmrank.nodes.remote`) lives in :mod:`swarmrank.wire`; the HTTP app is
:func:`swarmrank.agent.app.create_agent_app` (needs fastapi; imported only from there).
See ``docs/node-agent.md``.
"""

from swarmrank.agent.core import NodeAgent, agent_from_config

__all__ = ["NodeAgent", "agent_from_config"]
