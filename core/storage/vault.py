"""Encryption at rest: AES-256-GCM with a key id in every blob, so keys can rotate.

Blob layout: version byte 0x01, key-id length (1 byte), key id (ASCII), 12-byte nonce, ciphertext+tag.
The associated data binds a blob to its row and column, so a blob copied elsewhere does not decrypt.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = 1
_NONCE = 12
# How often encrypt() looks at the keyring file for a rotation done by `postbud keys rotate`.
_CHECK_SECONDS = 1.0

log = logging.getLogger(__name__)


class VaultError(Exception):
    """A blob cannot be decrypted: unknown key id, wrong row, or tampered bytes."""


@dataclass(frozen=True)
class Keyring:
    """Named 256-bit keys and which one encrypts new data."""

    active: str
    keys: dict[str, bytes]

    @classmethod
    def generate(cls) -> Keyring:
        kid = _new_kid()
        return cls(active=kid, keys={kid: AESGCM.generate_key(bit_length=256)})

    def rotated(self) -> Keyring:
        kid = _new_kid()
        return Keyring(active=kid, keys={**self.keys, kid: AESGCM.generate_key(bit_length=256)})

    def to_json(self) -> str:
        keys = {k: base64.b64encode(v).decode("ascii") for k, v in self.keys.items()}
        return json.dumps({"active": self.active, "keys": keys}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Keyring:
        data = json.loads(text)
        keys = {k: base64.b64decode(v) for k, v in data["keys"].items()}
        if data["active"] not in keys or any(len(k) != 32 for k in keys.values()):
            raise VaultError("keyring is malformed: the active key must exist and keys are 32 bytes")
        return cls(active=data["active"], keys=keys)


def _new_kid() -> str:
    return "k" + secrets.token_hex(4)


def keyring_path(configured: Path) -> Path:
    """$POSTBUD_KEYRING when set (always a file path, as the deploy files give it), else `configured`."""
    env = os.environ.get("POSTBUD_KEYRING", "").strip()
    if not env:
        return configured
    if env.startswith("{"):
        raise VaultError("$POSTBUD_KEYRING is the keyring file's path, not its JSON: "
                         "write the JSON to a file (mode 0600) and give its path")
    return Path(env)


def load_keyring(path: Path, *, create: bool) -> Keyring:
    """The keyring file at `keyring_path(path)`; created 0600 in a 0700 folder on first use if allowed."""
    path = keyring_path(path)
    if path.exists():
        return Keyring.from_json(path.read_text(encoding="utf-8"))
    if not create:
        raise VaultError(f"keyring {path} does not exist")
    keyring = Keyring.generate()
    if not save_keyring(path, keyring, exclusive=True):
        # Another instance created it first (started together): use theirs, or data sealed with
        # one of the two keyrings could never be read by the other.
        return Keyring.from_json(path.read_text(encoding="utf-8"))
    return keyring


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) owner-only, whatever the umask; an existing folder is left as is."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for created in missing:
        os.chmod(created, 0o700)  # mkdir's mode is masked by the umask; chmod's is not


def save_keyring(path: Path, keyring: Keyring, *, exclusive: bool = False) -> bool:
    """Write atomically with owner-only permissions (in a 0700 folder); with `exclusive`, only if
    `path` does not exist yet (False then)."""
    private_dir(path.parent)
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(keyring.to_json())
        handle.flush()
        os.fsync(handle.fileno())
    if not exclusive:
        os.replace(tmp, path)
        return True
    try:
        os.link(tmp, path)  # fails if it exists: never replaces another instance's new keyring
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True


class Vault:
    """Seals and opens blobs. With `source` (the keyring file), a keyring rotated on disk while the
    process runs is taken up by itself: at once for a blob under a key not yet known, within
    about a second for new blobs, and on `refresh()` (SIGHUP). Keys once read are never dropped,
    so blobs under an old key stay readable until rotation has re-encrypted every one of them."""

    def __init__(self, keyring: Keyring, *, source: Path | None = None) -> None:
        self._state = (keyring, {kid: AESGCM(key) for kid, key in keyring.keys.items()})
        self.source = source
        self._stamp = _stamp(source)
        self._checked = time.monotonic()

    @property
    def keyring(self) -> Keyring:
        return self._state[0]

    def refresh(self, *, force: bool = False) -> bool:
        """Read the keyring file again if it changed (or `force`); True when a new keyring was taken."""
        self._checked = time.monotonic()
        if self.source is None:
            return False
        stamp = _stamp(self.source)
        if stamp == self._stamp and not force:
            return False
        try:
            fresh = Keyring.from_json(self.source.read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, VaultError) as exc:
            log.error("keyring %s could not be read again; keeping the one in use: %s", self.source,
                      type(exc).__name__)
            return False
        keys = {**self.keyring.keys, **fresh.keys}
        self._state = (Keyring(fresh.active, keys), {kid: AESGCM(key) for kid, key in keys.items()})
        self._stamp = stamp
        if fresh.active != self.keyring.active or len(keys) != len(self.keyring.keys):
            log.info("keyring reloaded: active key %s, %d keys", fresh.active, len(keys))
        return True

    def encrypt(self, plaintext: bytes, aad: str) -> bytes:
        if self.source is not None and time.monotonic() - self._checked > _CHECK_SECONDS:
            self.refresh()
        keyring, ciphers = self._state
        kid = keyring.active.encode("ascii")
        nonce = os.urandom(_NONCE)
        sealed = ciphers[keyring.active].encrypt(nonce, plaintext, aad.encode("utf-8"))
        return bytes([_VERSION, len(kid)]) + kid + nonce + sealed

    def decrypt(self, blob: bytes, aad: str) -> bytes:
        kid = self.key_id(blob)
        cipher = self._state[1].get(kid)
        if cipher is None and self.refresh(force=True):
            cipher = self._state[1].get(kid)  # rotated on disk since this process read the keyring
        if cipher is None:
            raise VaultError(f"blob was encrypted with key {kid!r}, which the keyring does not hold")
        start = 2 + len(kid)
        nonce, sealed = blob[start : start + _NONCE], blob[start + _NONCE :]
        try:
            return cipher.decrypt(nonce, sealed, aad.encode("utf-8"))
        except InvalidTag:
            raise VaultError("blob does not decrypt: tampered, or stored under another row") from None

    @staticmethod
    def key_id(blob: bytes) -> str:
        if len(blob) < 2 + _NONCE or blob[0] != _VERSION:
            raise VaultError("not an encrypted blob")
        return blob[2 : 2 + blob[1]].decode("ascii")

    def needs_rotation(self, blob: bytes) -> bool:
        if self.source is not None and time.monotonic() - self._checked > _CHECK_SECONDS:
            self.refresh()
        return self.key_id(blob) != self.keyring.active


def _stamp(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)
