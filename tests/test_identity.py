"""Tests for swarmrank.identity: node ids, key files that are created once and never replaced, signatures."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from swarmrank.errors import ConfigError
from swarmrank.identity import check_node_id, load_or_create, verify


def test_first_use_creates_a_0600_pem_key_file(tmp_path: Path):
    keys = tmp_path / "keys" / "nested"
    identity = load_or_create(keys, "node-1")
    path = keys / "node-1.pem"
    assert identity.created is True
    assert identity.node_id == "node-1"
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")


def test_second_use_loads_the_same_key_and_reports_it_was_not_created(tmp_path: Path):
    first = load_or_create(tmp_path, "node-1")
    pem = (tmp_path / "node-1.pem").read_bytes()
    second = load_or_create(tmp_path, "node-1")
    assert second.created is False
    assert second.public_hex == first.public_hex
    assert (tmp_path / "node-1.pem").read_bytes() == pem


def test_public_hex_is_a_raw_32_byte_key_and_fingerprint_its_prefix(tmp_path: Path):
    identity = load_or_create(tmp_path, "n")
    assert len(identity.public_hex) == 64
    int(identity.public_hex, 16)  # hex digits only
    assert identity.fingerprint == identity.public_hex[:16]


def test_different_nodes_get_different_keys(tmp_path: Path):
    assert load_or_create(tmp_path, "a").public_hex != load_or_create(tmp_path, "b").public_hex


def test_corrupted_key_file_raises_and_is_not_overwritten(tmp_path: Path):
    path = tmp_path / "node-1.pem"
    path.write_bytes(b"not a pem at all")
    with pytest.raises(ConfigError, match="unreadable.*refusing to replace"):
        load_or_create(tmp_path, "node-1")
    assert path.read_bytes() == b"not a pem at all"


def test_truncated_key_file_raises_and_is_not_overwritten(tmp_path: Path):
    load_or_create(tmp_path, "node-1")
    path = tmp_path / "node-1.pem"
    truncated = path.read_bytes()[:50]
    path.write_bytes(truncated)
    with pytest.raises(ConfigError):
        load_or_create(tmp_path, "node-1")
    assert path.read_bytes() == truncated


def test_key_file_with_a_non_ed25519_key_raises_and_is_not_overwritten(tmp_path: Path):
    pem = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path = tmp_path / "node-1.pem"
    path.write_bytes(pem)
    with pytest.raises(ConfigError, match="does not hold an Ed25519 key"):
        load_or_create(tmp_path, "node-1")
    assert path.read_bytes() == pem


@pytest.mark.parametrize("node_id", [
    "", "-dash", ".hidden", "_under", "a/b", "../x", "a b", "x" * 65, "abc\n", "nöde",
])
def test_bad_node_ids_are_rejected(node_id):
    with pytest.raises(ConfigError, match="bad node id"):
        check_node_id(node_id)


@pytest.mark.parametrize("node_id", ["a", "9", "smol-judge", "node_1.v2", "x" * 64])
def test_good_node_ids_are_accepted_unchanged(node_id):
    assert check_node_id(node_id) == node_id


def test_load_or_create_rejects_a_bad_node_id_without_touching_the_disk(tmp_path: Path):
    keys = tmp_path / "keys"
    with pytest.raises(ConfigError):
        load_or_create(keys, "../escape")
    assert not keys.exists()
    assert not (tmp_path / "escape.pem").exists()


def test_sign_and_verify_round_trip(tmp_path: Path):
    identity = load_or_create(tmp_path, "signer")
    payload = b'{"verdict": "A", "round": 1}'
    signature = identity.sign(payload)
    assert len(signature) == 64
    assert verify(identity.public_hex, payload, signature) is True


def test_signature_survives_reloading_the_key(tmp_path: Path):
    signature = load_or_create(tmp_path, "signer").sign(b"payload")
    reloaded = load_or_create(tmp_path, "signer")
    assert verify(reloaded.public_hex, b"payload", signature) is True


def test_tampered_payload_fails_verification(tmp_path: Path):
    identity = load_or_create(tmp_path, "signer")
    signature = identity.sign(b'{"verdict": "A"}')
    assert verify(identity.public_hex, b'{"verdict": "B"}', signature) is False


def test_tampered_signature_fails_verification(tmp_path: Path):
    identity = load_or_create(tmp_path, "signer")
    signature = bytearray(identity.sign(b"payload"))
    signature[0] ^= 0x01
    assert verify(identity.public_hex, b"payload", bytes(signature)) is False


def test_signature_from_another_node_fails_verification(tmp_path: Path):
    alice = load_or_create(tmp_path, "alice")
    bob = load_or_create(tmp_path, "bob")
    assert verify(bob.public_hex, b"payload", alice.sign(b"payload")) is False


def test_an_unwritable_keys_directory_is_a_config_error_not_a_traceback(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot create a key for node 'n1'"):
        load_or_create(blocker / "keys", "n1")
