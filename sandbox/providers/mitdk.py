"""A fake mit.dk viewing-client API (PROTOCOLS.md §4.2) for tests and `postbud sandbox`, as a Starlette app.

Token endpoints with expiry and refresh-token rotation (a used refresh token is retired, so a lost
new one surfaces as a refused refresh), 401 on a missing or expired access token, the JSON shapes
of §2.3, `If-Match` on PATCH with 409 when stale, and mit.dk's own failure shapes on demand
(`{errorMessages}` inside a 200, `Rest Exception` 500s). Generic faults come from the shared middleware.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from sandbox.providers.mitdk_model import SOURCE, Mailbox, message_json, new_mailbox
from sandbox.fake import FakeProvider
from sandbox.generator import company_name
from core.domain import NormalizedMessage
from sandbox.testca import LocalCA



@dataclass
class _Chain:
    """One onboarding's token chain: the live refresh tokens and the access tokens issued from them."""

    dpp_refresh: str
    ngdp_refresh: str
    access: dict[str, float] = field(default_factory=dict)  # access token -> expires_on


class FakeMitdk(FakeProvider):
    """One company identity's view of mit.dk; the conformance hooks come from `FakeProvider`."""

    name: ClassVar[str] = "mitdk"
    base_path: ClassVar[str] = "/view/client"

    def __init__(self, *, client_id: str = "postbud-test-client", token_ttl: float = 1200.0,
                 seed: int = 0, clock: Callable[[], float] = time.time) -> None:
        super().__init__(seed=seed)
        self.client_id = client_id
        self.token_ttl = token_ttl
        self.stale_if_match = 0  # PATCHes refused because their If-Match was not the current version
        self.clock = clock
        self.chain = _Chain(secrets.token_urlsafe(24), secrets.token_urlsafe(24))
        self.initial_refresh = (self.chain.dpp_refresh, self.chain.ngdp_refresh)
        self.mailboxes: dict[str, Mailbox] = {}
        self.personal = new_mailbox("Delegeret Person", "0101701234", "CPR")
        self.refreshes = 0
        self.unauthorized = 0
        self.error_messages_pending = 0
        self.rest_exceptions_pending = 0
        self._codes: dict[str, str] = {}

    # -- the conformance interface (the rest is FakeProvider's) ---------------------------------

    def reset(self) -> None:
        super().reset()
        for mailbox in self.mailboxes.values():
            mailbox.messages.clear()
        self.error_messages_pending = self.rest_exceptions_pending = 0

    def mailbox_for(self, cvr: str, name: str | None = None) -> Mailbox:
        """The company mailbox of `cvr`, created on first use (its id is stable per CVR)."""
        if cvr not in self.mailboxes:
            self.mailboxes[cvr] = new_mailbox(name or company_name(cvr), cvr)
        return self.mailboxes[cvr]

    def add_messages(self, messages: Sequence[NormalizedMessage]) -> list[str]:
        keys = super().add_messages(messages)
        for message in messages:
            self.mailbox_for(message.recipient.id or "00000000", message.recipient.name).add(message)
        return keys

    def credentials(self) -> dict[str, str]:
        """What the operator configures after onboarding: the client id and the first refresh tokens."""
        return {"client_id": self.client_id, "dpp_refresh_token": self.initial_refresh[0],
                "ngdp_refresh_token": self.initial_refresh[1]}

    def issue_code(self, code_challenge: str) -> str:
        """An authorization code as the MitID login would end with, bound to a PKCE S256 challenge."""
        code = secrets.token_urlsafe(16)
        self._codes[code] = code_challenge
        return code

    def revoke_access(self) -> None:
        """Forget the issued access tokens (the server restarted, a session was killed): next call is a 401."""
        self.chain.access.clear()

    def touch(self, key: str) -> None:
        """Someone else changed the message (e.g. read it in the app): its version moves on."""
        for mailbox in self.mailboxes.values():
            if key in mailbox.messages:
                mailbox.messages[key].version += 1

    def build_app(self) -> ASGIApp:
        data = "/view/client/{source}/mailboxes/{mailbox}/messages/{message}"
        return Starlette(routes=[
            Route("/view/client/authorization/token", self._token, methods=["POST"]),
            Route("/view/client/authorization/refresh", self._refresh, methods=["POST"]),
            Route("/view/client/authorization/revoke", self._revoke, methods=["POST"]),
            Route("/view/client/mailboxes", self._mailboxes, methods=["GET"]),
            Route("/view/client/folders/query", self._folders, methods=["POST"]),
            Route("/view/client/messages/query", self._messages, methods=["POST"]),
            Route(data, self._message, methods=["GET", "PATCH"]),
            Route(data + "/documents/{document}/files/{file}/content", self._content, methods=["GET"]),
        ])

    # -- HTTP ----------------------------------------------------------------------------------

    @staticmethod
    def _error(status: int, code: str, message: str) -> Response:
        return JSONResponse({"code": code, "message": message, "fieldError": [],
                             "traceId": uuid.uuid4().hex}, status_code=status)

    def _authorized(self, request: Request) -> Response | None:
        """None when both access tokens are live; else the 401 (or an injected mit.dk failure)."""
        now = self.clock()
        tokens = (request.headers.get("mitdktoken", ""), request.headers.get("ngdptoken", ""))
        if self.auth_broken or not all(self.chain.access.get(t, 0.0) > now for t in tokens):
            self.unauthorized += 1
            return self._error(401, "UNAUTHORIZED", "Access token missing or expired")
        if self.rest_exceptions_pending:
            self.rest_exceptions_pending -= 1
            return Response(f"Rest Exception: <ServerErrorException> traceId={uuid.uuid4().hex}",
                            status_code=500, media_type="text/plain")
        if self.error_messages_pending:
            self.error_messages_pending -= 1
            return JSONResponse({"errorMessages": [{"code": "DP-5000", "message": "Midlertidig fejl",
                                                    "fieldError": []}]})
        return None

    def _issue(self) -> dict[str, Any]:
        """A new pair from a new chain position; the previous refresh tokens stop working."""
        chain = self.chain
        expires_on = self.clock() + self.token_ttl
        chain.dpp_refresh, chain.ngdp_refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        answer: dict[str, Any] = {}
        for name, refresh in (("dpp", chain.dpp_refresh), ("ngdp", chain.ngdp_refresh)):
            access = secrets.token_urlsafe(32)
            chain.access[access] = expires_on
            answer[name] = {"access_token": access, "refresh_token": refresh, "expires_on": int(expires_on),
                            "token_type": "Bearer", "scope": "openid"}
        return answer

    async def _token(self, request: Request) -> Response:
        """The authorization-code exchange that ends onboarding: PKCE-checked, no client secret (§2.1)."""
        query = request.query_params
        challenge = self._codes.pop(query.get("code", ""), None)
        verifier = query.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if (query.get("grant_type") != "authorization_code" or query.get("client_id") != self.client_id
                or challenge is None or digest != challenge):
            return self._error(400, "invalid_grant", "Invalid authorization code")
        pair = self._issue()
        # First login: the mit.dk pair at the top level, the NgDP pair under `ngdp`.
        return JSONResponse({**pair["dpp"], "expires_in": int(self.token_ttl), "ngdp": pair["ngdp"]})

    async def _refresh(self, request: Request) -> Response:
        if request.query_params.get("client_id") != self.client_id:
            return self._error(400, "invalid_client", "Unknown client")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return self._error(400, "invalid_request", "Body is not JSON")
        chain = self.chain
        if (self.auth_broken or not isinstance(body, dict) or body.get("dppRefreshToken") != chain.dpp_refresh
                or body.get("ngdpRefreshToken") != chain.ngdp_refresh):
            # Also a replayed (retired) refresh token: rotation makes persistence bugs visible [U].
            return self._error(400, "invalid_grant", "Refresh token is invalid or has been used")
        answer = self._issue()
        self.refreshes += 1
        return JSONResponse(answer)

    async def _revoke(self, request: Request) -> Response:
        return JSONResponse({})

    async def _mailboxes(self, request: Request) -> Response:
        if (refused := self._authorized(request)) is not None:
            return refused
        boxes = [self.personal, *self.mailboxes.values()]
        return JSONResponse({"groupedMailboxes": [{"mailboxes": [b.json() for b in boxes]}]})

    async def _folders(self, request: Request) -> Response:
        if (refused := self._authorized(request)) is not None:
            return refused
        body = json.loads(await request.body() or b"{}")
        wanted = (body.get("mailboxes") or {}).get(SOURCE)
        mailbox = next((b for b in self.mailboxes.values() if b.mailbox_id == wanted), None)
        if mailbox is None:
            return self._error(404, "NOT_FOUND", "Unknown mailbox")
        return JSONResponse({"folders": {kind: [{"id": fid, "dataSource": SOURCE, "mailboxId": mailbox.mailbox_id,
                                                 "type": kind}]
                                         for kind, fid in mailbox.folders.items()}})

    async def _messages(self, request: Request) -> Response:
        if (refused := self._authorized(request)) is not None:
            return refused
        body = json.loads(await request.body() or b"{}")
        try:
            query = body["folders"][0]
            size = max(1, min(1000, int(body.get("size", 100))))
            start = max(0, int(query.get("startIndex", 0)))
        except (KeyError, IndexError, TypeError, ValueError):
            return self._error(400, "BAD_REQUEST", "Invalid query")
        mailbox = next((b for b in self.mailboxes.values() if b.mailbox_id == query.get("mailboxId")), None)
        if mailbox is None:
            return self._error(404, "NOT_FOUND", "Unknown mailbox")
        folder_ids = set(query.get("foldersId") or [])
        found = [m for m in mailbox.newest_first() if m.folder_id in folder_ids]
        return JSONResponse({"results": [message_json(m, poisoned=m.key in self.poisoned)
                                         for m in found[start:start + size]]})

    def _find(self, request: Request) -> tuple[Mailbox, Any] | Response:
        params = request.path_params
        mailbox = next((b for b in self.mailboxes.values() if b.mailbox_id == params["mailbox"]), None)
        if params["source"] != SOURCE or mailbox is None or params["message"] not in mailbox.messages:
            return self._error(404, "NOT_FOUND", "Unknown message")
        return mailbox, mailbox.messages[params["message"]]

    async def _message(self, request: Request) -> Response:
        if (refused := self._authorized(request)) is not None:
            return refused
        found = self._find(request)
        if isinstance(found, Response):
            return found
        _, message = found
        if request.method == "PATCH":
            if request.headers.get("if-match") != str(message.version):
                self.stale_if_match += 1
                return self._error(409, "CONFLICT", "The message was changed by someone else")
            patch = json.loads(await request.body() or b"{}")
            if patch.get("read") is True:
                message.read = True
                self.record_ack(message.key)
            message.version += 1
        return JSONResponse(message_json(message, poisoned=message.key in self.poisoned))

    async def _content(self, request: Request) -> Response:
        if (refused := self._authorized(request)) is not None:
            return refused
        found = self._find(request)
        if isinstance(found, Response):
            return found
        _, message = found
        stored = message.files.get(request.path_params["file"])
        if stored is None or stored.document_id != request.path_params["document"]:
            return self._error(404, "NOT_FOUND", "Unknown file")
        if stored.first:
            self.record_fetch(message.key)
        return Response(stored.content, media_type=stored.encoding_format)


def make_fake(*, folder: Path, ca: LocalCA, seed: int = 0) -> FakeMitdk:
    """The sandbox's mit.dk (see `sandbox.run`): a fresh token chain, no client certificate."""
    del folder, ca  # nothing on disk; mit.dk uses no client certificates
    return FakeMitdk(client_id=f"postbud-sandbox-{seed}", seed=seed)
