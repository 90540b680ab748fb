"""Webhook channel: HTTPS POST of a signed JSON envelope carrying documents encrypted to the recipient.

The envelope is sealed by default (every field but the id encrypted); delivery/README.md is the
receiver's contract. Signature: X-Postbud-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>, with the
unix timestamp in X-Postbud-Timestamp. Receivers check it with `verify_webhook` (or the same three
lines in their own language) and reject timestamps outside the replay window.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Mapping, MutableSet, Sequence
from pathlib import Path
from typing import Any

import httpx
import pysequoia
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7

from core.domain import File
from core.untrusted import safe_filename
from delivery.errors import EncryptionError, TlsRequired
from delivery.keys import first_line
from delivery.recipients import KeyKind
from delivery.translate import (
    HTTP_FAULTS,
    webhook_status_error,
    webhook_transport_error,
)

SIGNATURE_HEADER = "X-Postbud-Signature"
TIMESTAMP_HEADER = "X-Postbud-Timestamp"
ENVELOPE_VERSION = 1  # clear metadata, each document encrypted
SEALED_VERSION = 2  # everything but the id inside one encrypted object


class WebhookVerificationError(Exception):
    """The request is not a genuine, fresh postbud delivery."""


def encrypt_document(content: bytes, kind: KeyKind, key: bytes) -> tuple[str, bytes]:
    """(encryption format, ciphertext) of one document for the recipient's key."""
    try:
        if kind is KeyKind.PGP:
            cert = pysequoia.Cert.from_bytes(key)
            return "openpgp", pysequoia.encrypt(content, [cert], armor=False)
        der = (
            pkcs7.PKCS7EnvelopeBuilder()
            .set_data(content)
            .add_recipient(x509.load_pem_x509_certificate(key))
            .set_content_encryption_algorithm(algorithms.AES256)
            .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
        )
        return "cms", der
    except (RuntimeError, ValueError, TypeError) as exc:  # both libraries' key errors, typed here
        raise EncryptionError(f"cannot encrypt document to the recipient key: {first_line(exc)}") \
            from None


def build_envelope(*, delivery_id: str, trace_id: str, sender: str, title: str,
                   received_at: dt.datetime, files: Sequence[File], key_kind: KeyKind,
                   key: bytes, sealed: bool = True) -> bytes:
    """The JSON body. `delivery_id` is the outbox row's stable id, the same on every retry, so
    receivers deduplicate on it before decrypting anything.

    Sealed (version 2): only `version`, `id` and one encrypted `sealed` object travel readable; title,
    sender, received time, trace id, file names and documents are all inside it. Clear (version 1):
    each document is encrypted, the metadata beside it travels under TLS only.
    """
    if sealed:
        inner = {
            "trace_id": trace_id, "sender": sender, "title": title, "received_at": received_at.isoformat(),
            "documents": [{"name": safe_filename(f.name), "media_type": f.media_type,
                           "data": base64.b64encode(f.content).decode("ascii")} for f in files],
        }
        fmt, data = encrypt_document(_json(inner), key_kind, key)
        return _json({"version": SEALED_VERSION, "id": delivery_id,
                      "sealed": {"encryption": fmt, "data": base64.b64encode(data).decode("ascii")}})
    documents = []
    for f in files:
        fmt, data = encrypt_document(f.content, key_kind, key)
        documents.append({"name": safe_filename(f.name), "media_type": f.media_type, "encryption": fmt,
                          "data": base64.b64encode(data).decode("ascii")})
    envelope = {
        "version": ENVELOPE_VERSION, "id": delivery_id, "trace_id": trace_id, "sender": sender,
        "title": title, "received_at": received_at.isoformat(), "documents": documents,
    }
    return _json(envelope)


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header value for a body sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def webhook_client(*, ca_file: Path | None = None, timeout: float = 30.0) -> httpx.AsyncClient:
    """An HTTPS client verifying the endpoint against `ca_file` (default: system trust)."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    return httpx.AsyncClient(verify=ctx, timeout=timeout, follow_redirects=False)


async def post_webhook(client: httpx.AsyncClient, url: str, body: bytes, secret: bytes, *,
                       now: float | None = None) -> int:
    """POST one envelope; returns the 2xx status. Errors are typed like the SMTP channel's."""
    if not url.startswith("https://"):
        raise TlsRequired(f"webhook url is not https; nothing sent to {url}")
    ts = int(now if now is not None else time.time())
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: str(ts),
               SIGNATURE_HEADER: sign(secret, ts, body)}
    try:
        response = await client.post(url, content=body, headers=headers)
    except HTTP_FAULTS as exc:
        raise webhook_transport_error(exc) from None
    status = response.status_code
    if 200 <= status < 300:
        return status
    raise webhook_status_error(status, response.text[:200])


def verify_webhook(headers: Mapping[str, str], body: bytes, secret: bytes, *,
                   window_seconds: int = 300, now: float | None = None,
                   seen: MutableSet[str] | None = None) -> dict[str, Any]:
    """The receiver's check: signature, freshness, and (given `seen`) no replay within the window.

    Returns the parsed envelope. `headers` lookups are case-insensitive when given httpx/starlette
    headers; pass a plain dict with the canonical names otherwise.
    """
    ts_raw, sig = headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
    if not ts_raw or not sig:
        raise WebhookVerificationError("missing signature or timestamp header")
    try:
        ts = int(ts_raw)
    except ValueError:
        raise WebhookVerificationError("timestamp is not an integer") from None
    if not hmac.compare_digest(sign(secret, ts, body), sig):
        raise WebhookVerificationError("signature mismatch")
    current = now if now is not None else time.time()
    if abs(current - ts) > window_seconds:
        raise WebhookVerificationError("timestamp outside the replay window")
    if seen is not None:
        # a valid signature seen before inside the window is a replay
        if sig in seen:
            raise WebhookVerificationError("replayed request")
        seen.add(sig)
    try:
        envelope: dict[str, Any] = json.loads(body)
    except ValueError:
        raise WebhookVerificationError("body is not JSON") from None
    return envelope
