"""Model files: versioned, HMAC-SHA256-signed, written atomically; unpickled only once verified.

Layout: the magic line, one JSON header line (format and library versions, organisation,
fingerprint), one line with the hex HMAC-SHA256 over header line and payload, then the pickled
payload. The header is readable without the key (for diagnostics) but is trusted only after the
signature matches. The signed header names the organisation the model learned from, so a file
copied under another organisation's name is refused: one organisation's letters never train
another's routing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import sklearn

from core.storage.vault import private_dir
from router.suggester.errors import ModelRejected, RejectReason
from router.suggester.model import TrainedModel

FORMAT_VERSION = 2  # 2: the header binds the model to its organisation
_MAGIC = b"POSTBUD-SUGGESTER\n"


def _header(model: TrainedModel, organisation: str) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "organisation": organisation,
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "fingerprint": model.fingerprint,
        "classes": len(model.classes),
        "trained_at": model.trained_at,
    }


def _sign(key: bytes, header_line: bytes, payload: bytes) -> bytes:
    return hmac.new(key, header_line + payload, hashlib.sha256).hexdigest().encode("ascii")


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) < 16:
        raise ValueError("the model signing key must be at least 16 bytes")


def save_model(model: TrainedModel, path: str | Path, key: bytes, *, organisation: str = "") -> None:
    """Writes the signed model of `organisation` to `path` atomically: a crash leaves the old file
    or the new, never half."""
    _check_key(key)
    target = Path(path)
    header_line = json.dumps(_header(model, organisation), sort_keys=True).encode("utf-8") + b"\n"
    payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    blob = _MAGIC + header_line + _sign(key, header_line, payload) + b"\n" + payload
    private_dir(target.parent)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(blob)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def _fsync_directory(folder: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened for this.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_header(path: str | Path) -> dict[str, Any]:
    """The unverified header, for diagnostics only (never a reason to trust the file)."""
    header_line, _signature, _payload = _split(Path(path))
    return _parse_header(header_line)


def _split(path: Path) -> tuple[bytes, bytes, bytes]:
    try:
        blob = path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelRejected(RejectReason.MISSING, f"{path} does not exist") from exc
    except OSError as exc:
        raise ModelRejected(RejectReason.CORRUPT, f"{path} unreadable: {exc.strerror}") from exc
    if not blob.startswith(_MAGIC):
        raise ModelRejected(RejectReason.CORRUPT, f"{path} is not a postbud suggester model")
    rest = blob[len(_MAGIC) :]
    header_end = rest.find(b"\n")
    signature_end = rest.find(b"\n", header_end + 1)
    if header_end < 0 or signature_end < 0:
        raise ModelRejected(RejectReason.CORRUPT, f"{path} is truncated")
    return rest[: header_end + 1], rest[header_end + 1 : signature_end], rest[signature_end + 1 :]


def _parse_header(header_line: bytes) -> dict[str, Any]:
    try:
        header = json.loads(header_line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelRejected(RejectReason.CORRUPT, "header is not JSON") from exc
    if not isinstance(header, dict):
        raise ModelRejected(RejectReason.CORRUPT, "header is not a JSON object")
    return header


def load_model(path: str | Path, key: bytes, *, organisation: str = "") -> TrainedModel:
    """Loads a model saved for `organisation` with the same key, format and scikit-learn version.

    Raises ModelRejected (retrain) when the file is missing, damaged, signed with another key,
    written for another organisation, or by another format or scikit-learn version.
    """
    _check_key(key)
    header_line, signature, payload = _split(Path(path))
    if not hmac.compare_digest(signature, _sign(key, header_line, payload)):
        raise ModelRejected(
            RejectReason.SIGNATURE, f"{path}: signature does not match (tampered or other key)"
        )
    header = _parse_header(header_line)
    if header.get("format") != FORMAT_VERSION:
        raise ModelRejected(
            RejectReason.FORMAT_VERSION,
            f"{path}: format {header.get('format')!r}, this postbud reads {FORMAT_VERSION}",
        )
    if header.get("organisation") != organisation:
        raise ModelRejected(
            RejectReason.ORGANISATION,
            f"{path}: learned for organisation {header.get('organisation')!r}, not {organisation!r}",
        )
    if header.get("sklearn") != sklearn.__version__:
        raise ModelRejected(
            RejectReason.SKLEARN_VERSION,
            f"{path}: trained with scikit-learn {header.get('sklearn')!r}, running {sklearn.__version__}",
        )
    try:
        # Safe only because the signature proved we wrote these bytes ourselves.
        model = pickle.loads(payload)
    except Exception as exc:  # unpickling can fail in many ways; all mean "retrain"
        raise ModelRejected(
            RejectReason.CORRUPT, f"{path}: payload unreadable ({type(exc).__name__})"
        ) from exc
    if not isinstance(model, TrainedModel):
        raise ModelRejected(RejectReason.CORRUPT, f"{path}: payload is not a trained model")
    return model
