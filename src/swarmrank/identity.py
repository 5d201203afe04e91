"""Node identities: an Ed25519 key pair per node id, kept on disk and never regenerated silently.

A key is created the first time a node id is seen (and the creation is reported); afterwards the
same file is loaded. A key file that exists but cannot be read is an error, never a reason to make
a new key: the node's identity would change under everyone who trusts it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from swarmrank.errors import ConfigError

_NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_node_id(node_id: str) -> str:
    if not _NODE_ID.fullmatch(node_id):  # fullmatch: '$' alone would accept a trailing newline
        raise ConfigError(
            f"bad node id {node_id!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return node_id


@dataclass(frozen=True)
class Identity:
    node_id: str
    private_key: Ed25519PrivateKey
    created: bool = False

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def public_hex(self) -> str:
        raw = self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return raw.hex()

    @property
    def fingerprint(self) -> str:
        return self.public_hex[:16]

    def sign(self, payload: bytes) -> bytes:
        return self.private_key.sign(payload)


def verify(public_hex: str, payload: bytes, signature: bytes) -> bool:
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
    try:
        key.verify(signature, payload)
    except InvalidSignature:
        return False
    return True


def load_or_create(keys_dir: Path, node_id: str) -> Identity:
    """Load ``keys_dir/<node_id>.pem`` or create it (mode 0600) if it does not exist."""
    check_node_id(node_id)
    path = keys_dir / f"{node_id}.pem"
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError, OSError) as exc:
            raise ConfigError(f"key file {path} is unreadable ({exc}); refusing to replace a node's identity") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"key file {path} does not hold an Ed25519 key")
        return Identity(node_id, key)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        keys_dir.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes creating the same node at once must not overwrite each other's key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_or_create(keys_dir, node_id)
    except OSError as exc:
        raise ConfigError(f"cannot create a key for node {node_id!r} in {keys_dir}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return Identity(node_id, key, created=True)
