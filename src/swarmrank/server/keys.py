"""API keys: ``sr-`` plus 43 random URL-safe characters (256 bits from :mod:`secrets`).

The store keeps only each key's SHA-256 hash, a name and a short display prefix. A fast, unsalted
hash is enough here because the keys are random and high-entropy: there is nothing to guess by
brute force, unlike with passwords.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

from swarmrank.errors import ConfigError
from swarmrank.store import Store

KEY_PREFIX = "sr-"
SHOWN_CHARS = 7  # "sr-" and four random characters, enough to tell keys apart in a listing
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_key_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ConfigError(f"bad API key name {name!r}: use 1-100 letters, digits, '.', '_', '@' or '-'")
    return name


def create_key(store: Store, name: str) -> tuple[str, dict[str, Any]]:
    """A new key for ``name``: returns the key (show it once; it is not stored) and its record."""
    check_key_name(name)
    key = new_key()
    return key, store.create_api_key(name, hash_key(key), key[:SHOWN_CHARS])


def find_key(store: Store, key: str) -> dict[str, Any] | None:
    """The active key's record (``id``, ``name``, ``prefix``), or None for an unknown or revoked key."""
    if not key.startswith(KEY_PREFIX):
        return None
    return store.find_api_key(hash_key(key))
