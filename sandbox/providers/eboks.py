"""A fake e-Boks mobile XML API (PROTOCOLS.md §4.1) for tests and `postbud sandbox`, as a Starlette app.

It checks what the real service checks as far as it is known: the logon challenge in both modes
(double SHA-256 of the activation code string; RSA PKCS#1 v1.5 over SHA-256 or SHA-1), one fresh
nonce per answer with stale nonces refused (401), idle session expiry (401), ErrorCode 10130 on bad
credentials, 404 for unknown shares/folders/messages, `unread` cleared by the first `/content`
download, 0-byte public-authority documents in low-assurance (activation-code) sessions, and
random 500s on `/content`. There is no explicit mark-read: no public client documents one (open
question 3), so the first `/content` download is what the fake records as the acknowledgement.
Faults come from `sandbox.faults`.
"""

from __future__ import annotations

import base64
import hashlib
import random
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from sandbox.providers.eboks_model import (
    NS,
    FakeMessage,
    FakeShare,
    error_xml,
    folders_xml,
    from_normalized,
    message_xml,
    messages_xml,
    new_share,
    session_xml,
    shares_xml,
)
from sandbox.fake import FakeProvider
from core.domain import NormalizedMessage
from sandbox.testca import LocalCA

PREFIX = "/mobile/1/xml.svc/{lang}"
_AUTH = "X-EBOKS-AUTHENTICATE"


@dataclass
class _Session:
    session_id: str
    nonce: str
    rsa: bool
    last_used: float


class FakeEboks(FakeProvider):
    """One delegate (CPR) with a share per company CVR; the conformance hooks come from `FakeProvider`."""

    name: ClassVar[str] = "eboks"
    base_path: ClassVar[str] = "/mobile/1/xml.svc/en-gb"

    def __init__(self, *, cpr: str = "0101701234", password: str = "mobilkode", device_id: str,
                 activation_code: str | None = None, public_key_pem: bytes | None = None,
                 response_check: str = "off", session_idle: float = 900.0, latin1: bool = False,
                 low_assurance: str = "zero", content_error_rate: float = 0.0, seed: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(seed=seed)
        self.cpr, self.password, self.device_id = cpr, password, device_id
        self.activation_code = activation_code
        self._public_key = serialization.load_pem_public_key(public_key_pem) if public_key_pem else None
        self.response_check = response_check
        self.session_idle = session_idle
        self.latin1 = latin1
        self.low_assurance = low_assurance  # "zero": public documents come back empty; "hide": not listed
        self.content_error_rate = content_error_rate
        self.clock = clock
        self.user_id = "4031001"
        self.shares: dict[str, FakeShare] = {}
        # Share "0" is the delegate's own mailbox (mail from private companies, ha-eboks README).
        self.own = new_share("0", "Delegeret Bruger", "", 9_500_000)
        self.sessions: dict[str, _Session] = {}
        self._rng = random.Random(seed)
        self.logons = 0
        self.extra_credentials: dict[str, str] = {}

    # -- the conformance interface (the rest is FakeProvider's) ---------------------------------

    def reset(self) -> None:
        super().reset()
        for share in (self.own, *self.shares.values()):
            share.clear()
        self.sessions.clear()

    def share_for(self, cvr: str, name: str | None = None) -> FakeShare:
        """The share that reaches company `cvr` (share id "7" + CVR), created on first use."""
        share_id = f"7{cvr}"
        if share_id not in self.shares:
            self.shares[share_id] = new_share(share_id, name or f"Virksomhed {cvr}", cvr,
                                              9_556_357 + len(self.shares) * 10)
        return self.shares[share_id]

    def add_messages(self, messages: Sequence[NormalizedMessage]) -> list[str]:
        keys = super().add_messages(messages)
        for message in messages:
            self.add_fake(self.share_for(message.recipient.id or "00000000", message.recipient.name),
                          from_normalized(message))
        return keys

    def add_fake(self, share: FakeShare, message: FakeMessage, *, folder: str = "Inbox") -> None:
        share.add(next(f for top in share.folders for f in top.walk() if f.name == folder), message)

    def break_auth(self) -> None:
        super().break_auth()
        self.sessions.clear()

    def expire_sessions(self) -> None:
        self.sessions.clear()

    def credentials(self) -> dict[str, str]:
        return {"cpr": self.cpr, "password": self.password, "device_id": self.device_id,
                "activation_code": self.activation_code or "", **self.extra_credentials}

    def build_app(self) -> ASGIApp:
        return self._starlette()

    def render_error(self, status: int, message: str) -> tuple[bytes, str]:
        return error_xml(str(status), message).encode("utf-8"), "application/xml; charset=utf-8"

    # -- HTTP ----------------------------------------------------------------------------------

    def _xml(self, body: str, status: int = 200, session: _Session | None = None) -> Response:
        # Latin-1 mode sends ISO-8859-1 bytes with no charset anywhere, as some real answers do (§1.4).
        if self.latin1:
            payload, ctype = body.encode("iso-8859-1", "xmlcharrefreplace"), "application/xml"
        else:
            payload, ctype = body.encode("utf-8"), "application/xml; charset=utf-8"
        response = Response(payload, status_code=status, media_type=None, headers={"content-type": ctype})
        if session is not None:
            session.nonce = secrets.token_hex(16)
            response.headers[_AUTH] = f'sessionid="{session.session_id}",nonce="{session.nonce}"'
        return response

    def _error(self, status: int, code: str, text: str, session: _Session | None = None) -> Response:
        return self._xml(error_xml(code, text), status, session)

    def _starlette(self) -> Starlette:
        base = PREFIX + "/{uid}/{share}/mail/folder/{fid}"
        return Starlette(routes=[
            Route(PREFIX + "/session", self._logon, methods=["PUT"]),
            Route(PREFIX + "/{uid}/0/shares", self._shares, methods=["GET"]),
            Route(PREFIX + "/{uid}/{share}/mail/folders", self._folders, methods=["GET"]),
            Route(base, self._messages, methods=["GET"]),
            Route(base + "/message/{mid}", self._detail, methods=["GET"]),
            Route(base + "/message/{mid}/content", self._content, methods=["GET"]),
        ])

    async def _logon(self, request: Request) -> Response:
        fields = _fields(request.headers.get(_AUTH, ""))
        body = await request.body()
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        try:
            user = next(etree.fromstring(body, parser).iter(f"{{{NS}}}User"))
        except (etree.XMLSyntaxError, StopIteration, ValueError):
            return self._error(400, "10001", "Invalid logon request")
        identity, pincode = user.get("identity", ""), user.get("pincode", "")
        when, challenge = fields.get("datetime", ""), fields.get("challenge", "")
        known = (not self.auth_broken and identity == self.cpr and pincode == self.password
                 and fields.get("deviceid") == self.device_id)
        rsa_mode = known and self._rsa_ok(challenge, f"EBOKS:{self.device_id}:P:{identity}:DK:{pincode}:{when}")
        activation = known and self.activation_code is not None and challenge == _double_sha(
            f"{self.activation_code}:{self.device_id}:P:{identity}:DK:{pincode}:{when}")
        if not (rsa_mode or activation):
            return self._error(401, "10130", "Invalid login credentials")
        session = _Session(str(uuid.uuid4()), "", rsa_mode, self.clock())
        self.sessions[session.session_id] = session
        self.logons += 1
        return self._xml(session_xml(self.user_id, "Delegeret Bruger"), session=session)

    def _rsa_ok(self, challenge: str, text: str) -> bool:
        if not isinstance(self._public_key, rsa.RSAPublicKey):
            return False
        try:
            signature = base64.b64decode(challenge, validate=True)
        except ValueError:
            return False
        for algorithm in (hashes.SHA256(), hashes.SHA1()):  # clients disagree on the hash [U]
            try:
                self._public_key.verify(signature, text.encode(), padding.PKCS1v15(), algorithm)
                return True
            except InvalidSignature:
                continue
        return False

    def _session(self, request: Request) -> _Session | Response:
        """The request's live session, or the 401 the real service answers."""
        fields = _fields(request.headers.get(_AUTH, ""))
        session = self.sessions.get(fields.get("sessionid", ""))
        if session is None or fields.get("deviceid") != self.device_id:
            return self._error(401, "10310", "Session not found")
        if self.clock() - session.last_used > self.session_idle:
            del self.sessions[session.session_id]
            return self._error(401, "10311", "Session expired")
        if fields.get("nonce") != session.nonce:
            return self._error(401, "10312", "Invalid nonce")
        if not self._response_ok(session, fields):
            return self._error(401, "10313", "Invalid response")
        session.last_used = self.clock()
        if request.path_params.get("uid") not in (None, self.user_id):
            return self._error(404, "10404", "Unknown user", session)
        return session

    def _response_ok(self, session: _Session, fields: dict[str, str]) -> bool:
        nonce, given = session.nonce, fields.get("response", "")
        if self.response_check == "postboks":
            return given == _double_sha(f"{self.activation_code}:{self.device_id}:{nonce}:{session.session_id}")
        if self.response_check == "ha-eboks":
            if session.rsa:
                return self._rsa_ok(given, f"{self.device_id}:{nonce}")
            return given == hashlib.sha256(f"{self.activation_code}:{self.device_id}:{nonce}".encode()).hexdigest()
        return True

    def _share(self, request: Request, session: _Session) -> FakeShare | Response:
        share_id = request.path_params["share"]
        share = self.own if share_id == "0" else self.shares.get(share_id)
        if share is None:
            return self._error(404, "10404", "Unknown share", session)
        return share

    def _session_share(self, request: Request) -> tuple[_Session, FakeShare] | Response:
        """The logged-on session and the share the path names, or the error answer for either."""
        session = self._session(request)
        if isinstance(session, Response):
            return session
        share = self._share(request, session)
        return share if isinstance(share, Response) else (session, share)

    def _hidden(self, session: _Session, message: FakeMessage) -> bool:
        return message.public and not session.rsa and self.low_assurance == "hide"

    async def _shares(self, request: Request) -> Response:
        session = self._session(request)
        if isinstance(session, Response):
            return session
        return self._xml(shares_xml(list(self.shares.values())), session=session)

    async def _folders(self, request: Request) -> Response:
        found_share = self._session_share(request)
        if isinstance(found_share, Response):
            return found_share
        session, share = found_share
        return self._xml(folders_xml(share), session=session)

    async def _messages(self, request: Request) -> Response:
        found_share = self._session_share(request)
        if isinstance(found_share, Response):
            return found_share
        session, share = found_share
        folder = share.folder(request.path_params["fid"])
        if folder is None:
            return self._error(404, "10404", "Unknown folder", session)
        try:
            skip = max(0, int(request.query_params.get("skip", "0")))
            take = min(1000, max(1, int(request.query_params.get("take", "100"))))
        except ValueError:
            return self._error(400, "10002", "Invalid paging", session)
        visible = [m for m in folder.messages if not self._hidden(session, m)]
        return self._xml(messages_xml(folder, visible[skip:skip + take]), session=session)

    async def _detail(self, request: Request) -> Response:
        found_share = self._session_share(request)
        if isinstance(found_share, Response):
            return found_share
        session, share = found_share
        found = share.find(request.path_params["mid"])
        if found is None or self._hidden(session, found[1]):
            return self._error(404, "10404", "Unknown message", session)
        if found[1].message_id in self.poisoned:
            return self._xml(f'<Message xmlns="{NS}" id="{found[1].message_id}"><Sender>', session=session)
        return self._xml(message_xml(*found), session=session)

    async def _content(self, request: Request) -> Response:
        found_share = self._session_share(request)
        if isinstance(found_share, Response):
            return found_share
        session, share = found_share
        # The folder segment is ignored here: Postboks always sends 0 (PROTOCOLS.md §1.4).
        found = share.find_content(request.path_params["mid"])
        if found is None or self._hidden(session, found[0]):
            return self._error(404, "10404", "Unknown document", session)
        if self.content_error_rate and self._rng.random() < self.content_error_rate:
            return self._error(500, "10500", "Internal error", session)
        message, content, is_body = found
        if is_body:
            self.record_fetch(message.message_id)
            # The only mark-read the protocol has (§1.5): e-Boks forgets the letter as unread here.
            message.unread = False
            self.record_ack(message.message_id)
        if message.public and not session.rsa and self.low_assurance == "zero":
            content = b""  # low-assurance session: public documents come back empty (Postboks#36)
        response = Response(content, media_type="application/octet-stream")
        session.nonce = secrets.token_hex(16)
        response.headers[_AUTH] = f'sessionid="{session.session_id}",nonce="{session.nonce}"'
        return response



def _fields(header: str) -> dict[str, str]:
    header = header.removeprefix("logon ").strip()
    out: dict[str, str] = {}
    for part in header.split(","):
        key, _, value = part.partition("=")
        out[key.strip()] = value.strip().strip('"')
    return out


def _double_sha(text: str) -> str:
    return hashlib.sha256(hashlib.sha256(text.encode()).hexdigest().encode()).hexdigest()


def make_fake(*, folder: Path, ca: LocalCA, seed: int = 0) -> FakeEboks:
    """The sandbox's e-Boks (see `sandbox.run`): a fresh delegate with an RSA device key on disk."""
    del ca  # e-Boks uses no client certificates
    rng = random.Random(f"eboks:{seed}")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / "device-key.pem"
    key_file.touch(mode=0o600, exist_ok=True)
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    fake = FakeEboks(
        cpr=f"{rng.randint(1, 28):02d}{rng.randint(1, 12):02d}{rng.randint(50, 99)}{rng.randint(1000, 9999)}",
        password=secrets.token_urlsafe(12), device_id=str(uuid.UUID(int=rng.getrandbits(128))).upper(),
        activation_code=secrets.token_hex(4),
        public_key_pem=key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo),
        seed=seed,
    )
    fake.extra_credentials = {"auth_mode": "rsa", "private_key_file": str(key_file)}
    return fake
