"""API keys: ``sr-`` plus 43 random URL-safe characters (256 bits from :mod:`secrets`).

The database keeps only each key's SHA-256 hash, a name and a short display prefix, in the
``api_keys`` table (migration ``m004_api_keys``). A fast, unsalted hash is enough here because the
keys are random and high-entropy: there is nothing to guess by brute force, unlike with passwords.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Index, String, insert, select, update
from sqlalchemy.orm import Mapped, mapped_column

from swarmrank.errors import ApiKeyError, ConfigError
from swarmrank.store.engine import Database
from swarmrank.store.schema import Base, UTCDateTime

__all__ = ["ApiKeyRow", "check_key_name", "create_key", "find_key", "hash_key", "list_keys", "new_key", "revoke_key"]

KEY_PREFIX = "sr-"
SHOWN_CHARS = 7  # "sr-" and four random characters, enough to tell keys apart in a listing
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")


class ApiKeyRow(Base):
    """One API key: its holder's name, the SHA-256 of the key, a display prefix, when it was revoked."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_api_keys_name", "name"),)


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_key_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ConfigError(f"bad API key name {name!r}: use 1-100 letters, digits, '.', '_', '@' or '-'")
    return name


def create_key(db: Database, name: str) -> tuple[str, dict[str, Any]]:
    """A new key for ``name``: returns the key (show it once; it is not stored) and its record.

    A name has at most one active (unrevoked) key: a second is an :class:`~swarmrank.errors.ApiKeyError`.
    """
    check_key_name(name)
    key = new_key()
    row = {"id": uuid.uuid4().hex, "name": name, "key_hash": hash_key(key), "prefix": key[:SHOWN_CHARS],
           "created_at": datetime.now(timezone.utc), "revoked_at": None}
    with db.write(f"create API key {name}") as conn:
        if conn.scalar(select(ApiKeyRow.id).where(ApiKeyRow.name == name, ApiKeyRow.revoked_at.is_(None))) is not None:
            raise ApiKeyError(f"an active API key named {name!r} exists; revoke it first or pick another name")
        conn.execute(insert(ApiKeyRow).values(**row))
    return key, {k: v for k, v in row.items() if k != "key_hash"}


def list_keys(db: Database) -> list[dict[str, Any]]:
    """Every API key (revoked ones too), oldest first, without hashes."""
    query = select(ApiKeyRow.id, ApiKeyRow.name, ApiKeyRow.prefix, ApiKeyRow.created_at, ApiKeyRow.revoked_at)
    with db.read("list API keys") as conn:
        return [dict(r._mapping) for r in conn.execute(query.order_by(ApiKeyRow.created_at, ApiKeyRow.id))]


def revoke_key(db: Database, name: str) -> dict[str, Any]:
    """Revoke the active key named ``name`` (an :class:`~swarmrank.errors.ApiKeyError` when there is none)."""
    now = datetime.now(timezone.utc)
    with db.write(f"revoke API key {name}") as conn:
        key_id = conn.scalar(select(ApiKeyRow.id).where(ApiKeyRow.name == name, ApiKeyRow.revoked_at.is_(None)))
        if key_id is None:
            raise ApiKeyError(f"no active API key named {name!r}")
        conn.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(revoked_at=now))
    return {"id": key_id, "name": name, "revoked_at": now}


def find_key(db: Database, key: str) -> dict[str, Any] | None:
    """The active key's record (``id``, ``name``, ``prefix``), or None for an unknown or revoked key."""
    if not key.startswith(KEY_PREFIX):
        return None
    query = select(ApiKeyRow.id, ApiKeyRow.name, ApiKeyRow.prefix).where(ApiKeyRow.key_hash == hash_key(key),
                                                                         ApiKeyRow.revoked_at.is_(None))
    with db.read("check an API key") as conn:
        row = conn.execute(query).first()
    return None if row is None else dict(row._mapping)
