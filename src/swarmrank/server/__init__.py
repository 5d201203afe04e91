"""The OpenAI-compatible HTTP server (``swarmrank serve``); needs ``fastapi`` and ``uvicorn``.

Importing :mod:`swarmrank` never imports this package.
"""

from swarmrank.server.app import create_app
from swarmrank.server.keys import create_key, hash_key
from swarmrank.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app", "create_key", "hash_key"]
