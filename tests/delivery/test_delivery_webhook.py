"""Webhook channel against a real local HTTPS server: signed envelope, encrypted documents, typed errors."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from delivery.errors import TlsRequired, WebhookPermanent, WebhookRefused, WebhookTransient
from delivery.recipients import KeyKind
from delivery.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookVerificationError,
    build_envelope,
    post_webhook,
    sign,
    verify_webhook,
    webhook_client,
)
from core.domain import File
from sandbox.testca import LocalCA

if TYPE_CHECKING:
    from delivery_testkit import Gpg, SmimeRecipient

SECRET = b"webhook-shared-secret"
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 100


@dataclass
class Receiver:
    """What the fake document system saw, and what it answers."""

    status: int = 200
    seen_signatures: set[str] = field(default_factory=set)
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        try:
            envelope = verify_webhook(request.headers, body, SECRET, seen=self.seen_signatures)
        except WebhookVerificationError as exc:
            self.rejected.append(str(exc))
            return JSONResponse({"error": str(exc)}, status_code=401)
        if self.status == 200:
            self.envelopes.append(envelope)
        return JSONResponse({"ok": self.status == 200}, status_code=self.status)


@dataclass(frozen=True)
class Endpoint:
    url: str
    ca_file: Path
    receiver: Receiver


@pytest.fixture
async def endpoint(test_ca: LocalCA) -> AsyncIterator[Endpoint]:
    receiver = Receiver()
    issued = test_ca.issue("webhook-server")
    app = Starlette(routes=[Route("/hook", receiver.endpoint, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, ssl_certfile=str(issued.cert_path),
                            ssl_keyfile=str(issued.key_path), log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    yield Endpoint(f"https://127.0.0.1:{port}/hook", test_ca.cert_path, receiver)
    server.should_exit = True
    await task
    sock.close()


def envelope_for(kind: KeyKind, key: bytes) -> bytes:
    return build_envelope(
        delivery_id="outbox-7", trace_id="tt-7", sender="Skattestyrelsen", title="Årsopgørelse",
        received_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
        files=[File("brev.pdf", "application/pdf", PDF)], key_kind=kind, key=key, sealed=False)


async def test_signed_envelope_arrives_and_document_decrypts_with_gpg(endpoint: Endpoint,
                                                                      gpg: Gpg) -> None:
    body = envelope_for(KeyKind.PGP, gpg.public_key)
    async with webhook_client(ca_file=endpoint.ca_file) as client:
        assert await post_webhook(client, endpoint.url, body, SECRET) == 200
    [received] = endpoint.receiver.envelopes
    assert received["id"] == "outbox-7" and received["title"] == "Årsopgørelse"
    [doc] = received["documents"]
    assert doc["encryption"] == "openpgp" and doc["name"] == "brev.pdf"
    ciphertext = base64.b64decode(doc["data"])
    assert PDF not in ciphertext
    done = gpg.run("--decrypt", input=ciphertext)
    assert done.returncode == 0, done.stderr
    assert done.stdout == PDF


def test_smime_document_decrypts_with_openssl(tmp_path: Path, openssl: str,
                                                    smime_recipient: SmimeRecipient) -> None:
    import json
    import subprocess

    doc = json.loads(envelope_for(KeyKind.SMIME, smime_recipient.cert_pem))["documents"][0]
    assert doc["encryption"] == "cms"
    (tmp_path / "doc.der").write_bytes(base64.b64decode(doc["data"]))
    done = subprocess.run([openssl, "cms", "-decrypt", "-binary", "-inform", "DER",
                           "-in", str(tmp_path / "doc.der"), "-inkey",
                           str(smime_recipient.key_path)], capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == PDF


async def test_replayed_request_is_rejected(endpoint: Endpoint) -> None:
    body = b'{"version":1}'
    async with webhook_client(ca_file=endpoint.ca_file) as client:
        now = dt.datetime.now(dt.UTC).timestamp()
        assert await post_webhook(client, endpoint.url, body, SECRET, now=now) == 200
        # an eavesdropper resending the identical signed request inside the window
        with pytest.raises(WebhookRefused) as caught:
            await post_webhook(client, endpoint.url, body, SECRET, now=now)
    assert caught.value.code == 401
    assert endpoint.receiver.rejected == ["replayed request"]


@pytest.mark.parametrize(("status", "error"),
                         [(503, WebhookTransient), (429, WebhookTransient), (400, WebhookPermanent)])
async def test_statuses_are_typed(endpoint: Endpoint, status: int,
                                  error: type[Exception]) -> None:
    endpoint.receiver.status = status
    async with webhook_client(ca_file=endpoint.ca_file) as client:
        with pytest.raises(error) as caught:
            await post_webhook(client, endpoint.url, b"{}", SECRET)
    assert caught.value.code == status  # type: ignore[attr-defined]


async def test_untrusted_certificate_and_plain_http_send_nothing(endpoint: Endpoint,
                                                                 tmp_path: Path) -> None:
    stranger = LocalCA(tmp_path / "other")
    async with webhook_client(ca_file=stranger.cert_path) as client:
        with pytest.raises(TlsRequired):
            await post_webhook(client, endpoint.url, b"{}", SECRET)
        with pytest.raises(TlsRequired):
            await post_webhook(client, endpoint.url.replace("https", "http"), b"{}", SECRET)
    assert endpoint.receiver.envelopes == [] and endpoint.receiver.rejected == []


def test_verifier_rejects_tampering_and_stale_timestamps() -> None:
    body, ts = b'{"a":1}', 1_700_000_000
    headers = {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(SECRET, ts, body)}
    assert verify_webhook(headers, body, SECRET, now=ts + 10) == {"a": 1}
    with pytest.raises(WebhookVerificationError, match="mismatch"):
        verify_webhook(headers, b'{"a":2}', SECRET, now=ts)
    with pytest.raises(WebhookVerificationError, match="mismatch"):
        verify_webhook(headers, body, b"other secret", now=ts)
    with pytest.raises(WebhookVerificationError, match="window"):
        verify_webhook(headers, body, SECRET, now=ts + 301)
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify_webhook({}, body, SECRET, now=ts)
