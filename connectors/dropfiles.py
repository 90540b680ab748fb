"""A drop folder's files on disk: regular files only, never through a symlink, read with few system calls.

A file's key is the SHA-256 of its bytes. Hashing it again before deleting it (is it still the file
that was stored?) cost as much as reading it; a file whose status had not changed for a while when it
was hashed gets an identity instead (device, inode, size, modification and status-change times):
any later write, truncation or replacement under its name changes the status-change time, which no
program can set back, so an unchanged identity proves unchanged bytes. A file changed within the
second before it was hashed gets no identity (a change in the same clock tick might not move the
time), and is hashed again.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

from connectors.errors import PermanentError, TransientError
from core.domain import NormalizedMessage, content_json

# How long a file's status must have stood still before its hash for its identity to stand for its
# bytes: far above the kernel's timestamp granularity (a few milliseconds).
_SETTLED_NS = 1_000_000_000
_CHUNK = 1 << 20


class NotRegular(OSError):
    """The name is a symlink, device, FIFO or folder: never read, never followed."""


def _open(path: Path) -> tuple[int, os.stat_result]:
    """Opens without following a symlink, and only a regular file (a FIFO would block, a device never end)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegular("is a symbolic link; only regular files are read") from None
        raise
    try:
        info = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise NotRegular("is not a regular file; only regular files are read")
    return fd, info


def _read(fd: int, limit: int, size: int) -> bytes:
    """Up to `limit` bytes; a file of `size` bytes is read in one call (its short read is its end)."""
    chunks: list[bytes] = []
    left = limit
    want = min(left, size + 1)
    while left > 0:
        chunk = os.read(fd, min(left, want))  # never 0: left > 0 and want >= 1
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
        if len(chunk) < want:
            break  # a regular file reads short only at its end
        want = _CHUNK
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_regular(path: Path, limit: int) -> tuple[bytes, int]:
    """At most `limit` bytes of the regular file at `path`, and its full size."""
    fd, info = _open(path)
    try:
        data = _read(fd, limit, info.st_size)
        size = info.st_size
        if len(data) >= limit:
            size = max(size, os.fstat(fd).st_size, len(data))  # it may have grown past the limit meanwhile
        return data, size
    finally:
        os.close(fd)


def fingerprint(path: Path, now_ns: int) -> tuple[str, str | None]:
    """The file's SHA-256 and, when its status stood still for a second before `now_ns`, its identity."""
    fd, info = _open(path)
    try:
        digest = hashlib.sha256()
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
    finally:
        os.close(fd)
    settled = now_ns - info.st_ctime_ns >= _SETTLED_NS
    return digest.hexdigest(), _identity(info) if settled else None


def sha256(path: Path) -> str:
    return fingerprint(path, 0)[0]


def unchanged(path: Path, identity: str | None) -> bool:
    """Is the name still the regular file that `fingerprint` gave `identity` (a cheap look, no read)?"""
    if not identity:
        return False
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and _identity(info) == identity


def _identity(info: os.stat_result) -> str:
    return f"{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}"


def read_and_parse(parse: Callable[[bytes, str], NormalizedMessage], path: str, limit: int,
                   evidence: int) -> tuple[bytes, NormalizedMessage, bytes]:
    """In a parse worker: the file's bytes, `parse(raw, name)` of them and that message's
    `content_json`. The daemon then does no file I/O for the letter and only seals its content; what
    goes wrong is raised typed, with what evidence there is: a file over `limit` bytes is refused
    with its first `evidence` bytes, one that does not parse with all of them."""
    name = Path(path).name
    try:
        raw, size = read_regular(Path(path), max(limit, evidence))
    except FileNotFoundError:
        raise TransientError(f"{name} disappeared before it was read") from None
    except NotRegular as exc:
        raise PermanentError(str(exc)) from None
    except OSError as exc:
        raise TransientError(f"cannot read {name}: {exc.strerror}") from None
    if size > limit:
        kept = raw[:evidence]
        raise PermanentError(f"{size} bytes exceeds max_bytes ({limit}); the first {len(kept)} bytes are kept "
                             "as evidence", raw=kept)
    try:
        message = parse(raw, name)
    except PermanentError as exc:
        raise PermanentError(str(exc), raw=raw) from None
    return raw, message, content_json(message)
