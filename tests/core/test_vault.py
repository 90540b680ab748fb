"""Encryption at rest: blobs carry their key id, are bound to their row, and survive rotation."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.storage.vault import Keyring, Vault, VaultError, load_keyring


def test_round_trip_and_binding_to_row() -> None:
    vault = Vault(Keyring.generate())
    blob = vault.encrypt(b"hemmeligt brev", "message:1:content")
    assert b"hemmeligt" not in blob
    assert vault.decrypt(blob, "message:1:content") == b"hemmeligt brev"
    with pytest.raises(VaultError, match="another row"):
        vault.decrypt(blob, "message:2:content")


def test_tampered_blob_is_refused() -> None:
    vault = Vault(Keyring.generate())
    blob = bytearray(vault.encrypt(b"x" * 40, "a"))
    blob[-1] ^= 1
    with pytest.raises(VaultError):
        vault.decrypt(bytes(blob), "a")


def test_rotation_keeps_old_keys_readable() -> None:
    old = Keyring.generate()
    blob = Vault(old).encrypt(b"data", "a")
    new = Vault(old.rotated())
    assert new.needs_rotation(blob)
    assert new.decrypt(blob, "a") == b"data"
    assert not new.needs_rotation(new.encrypt(b"data", "a"))


def test_keyring_created_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "keyring.json"
    first = load_keyring(path, create=True)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_keyring(path, create=False) == first
    with pytest.raises(VaultError, match="does not exist"):
        load_keyring(tmp_path / "none.json", create=False)


def test_a_running_vault_takes_up_a_keyring_rotated_on_disk(tmp_path: Path) -> None:
    from core.storage.vault import save_keyring

    # GIVEN a process whose vault read the keyring file
    path = tmp_path / "keyring.json"
    running = Vault(load_keyring(path, create=True), source=path)
    old_blob = running.encrypt(b"old letter", "a")
    # WHEN `postbud keys rotate` writes a new active key and re-encrypts a blob under it
    rotated = load_keyring(path, create=False).rotated()
    save_keyring(path, rotated)
    new_blob = Vault(rotated).encrypt(b"re-encrypted letter", "b")
    # THEN the running vault reads it at once, and the old key stays readable
    assert running.decrypt(new_blob, "b") == b"re-encrypted letter"
    assert running.decrypt(old_blob, "a") == b"old letter"
    assert running.keyring.active == rotated.active
    assert Vault.key_id(running.encrypt(b"new", "c")) == rotated.active
