"""An e-Boks XML API session: logon, the nonce rotated by every answer, re-logon on expiry, persisted state.

Requests are serialised by a lock because each one must carry the nonce of the previous answer
(PROTOCOLS.md §1.3); two requests in flight would race for it and one would be refused as stale.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from connectors.base import AuthError, StateStore, TransientError
from connectors.eboks.auth import (
    HEADER,
    format_header,
    logon_body,
    logon_challenge,
    parse_header,
    request_response,
    stamp,
)
from connectors.eboks.errors import status_error, translated
from connectors.eboks.settings import EboksSettings
from connectors.eboks.xmlparse import parse, parse_session

log = logging.getLogger(__name__)


@dataclass
class SessionState:
    user_id: str
    session_id: str
    nonce: str


class EboksSession:
    """The authenticated channel to one delegate's e-Boks; `data` is the connector's persisted state."""

    def __init__(self, settings: EboksSettings, store: StateStore, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._settings = settings
        self._store = store
        try:
            self._creds = settings.credentials()
            verify: ssl.SSLContext | bool = (
                ssl.create_default_context(cafile=str(settings.ca_file)) if settings.ca_file else True
            )
        except (OSError, ssl.SSLError) as exc:
            raise AuthError(f"e-Boks: cannot read the device key or ca_file ({exc}); fix the configuration") from exc
        self._http = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/") + "/",
            verify=verify,
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            headers={"Accept": "*/*"},
            transport=transport,
        )
        self._lock = asyncio.Lock()
        self._session: SessionState | None = None
        self._loaded = False
        # Which credentials a stored session belongs to, so a changed config never reuses it.
        self._identity = hashlib.sha256(
            f"{settings.base_url}:{settings.cpr}:{settings.device_id}:{settings.auth_mode.value}".encode()
        ).hexdigest()[:16]
        self.data: dict[str, Any] = {}
        self.logons = 0

    async def _load(self) -> None:
        if self._loaded:
            return
        self.data = dict(await self._store.load())
        stored = self.data.get("session")
        if isinstance(stored, dict) and self.data.get("identity") == self._identity:
            try:
                self._session = SessionState(**stored)
            except TypeError:
                self._session = None
        self._loaded = True

    async def persist(self) -> None:
        """Save the state, with the latest nonce, so a restart resumes the session."""
        await self._load()
        self.data["identity"] = self._identity
        self.data["session"] = asdict(self._session) if self._session else None
        await self._store.save(dict(self.data))

    async def user_id(self) -> str:
        async with self._lock:
            await self._load()
            if self._session is None:
                await self._logon()
            assert self._session is not None
            return self._session.user_id

    async def get(self, path: str, *, what: str, params: dict[str, str | int] | None = None) -> httpx.Response:
        return await self.request("GET", path, what=what, params=params)

    async def request(self, method: str, path: str, *, what: str, params: dict[str, str | int] | None = None,
                      accept: frozenset[int] = frozenset()) -> httpx.Response:
        """One call inside the session; a 401 (expired session, stale nonce) logs on again once.

        Statuses in `accept` are returned to the caller instead of raised.
        """
        async with self._lock:
            await self._load()
            for attempt in range(2):
                if self._session is None:
                    await self._logon()
                response = await self._send(method, path, params, what)
                if response.status_code == 401 and attempt == 0:
                    log.info("e-Boks session refused (%s); logging on again", what)
                    self._session = None
                    continue
                if response.is_success or response.status_code in accept:
                    return response
                raise status_error(response, what)
        raise AssertionError("unreachable")

    async def _send(self, method: str, path: str, params: dict[str, str | int] | None,
                    what: str) -> httpx.Response:
        session = self._session
        assert session is not None
        header = format_header({
            "deviceid": self._creds.device_id,
            "nonce": session.nonce,
            "sessionid": session.session_id,
            "response": request_response(self._creds, self._settings.response_style,
                                         session.nonce, session.session_id),
        })
        request = self._http.build_request(method, path, params=params, headers={HEADER: header})
        with translated(what):
            response = await self._http.send(request, stream=True)
            try:
                # The nonce is taken from the headers before the body is read, so a body cut off
                # in transit does not leave us holding a nonce the server already retired.
                fields = parse_header(response.headers.get(HEADER))
                if "nonce" in fields:
                    session.nonce = fields["nonce"]
                    session.session_id = fields.get("sessionid", session.session_id)
                await response.aread()
            finally:
                await response.aclose()
        return response

    async def _logon(self) -> None:
        when = stamp()
        header = "logon " + format_header({
            "deviceid": self._creds.device_id,
            "datetime": when,
            "challenge": logon_challenge(self._creds, when),
        })
        with translated("logon"):
            response = await self._http.put(
                "session", content=logon_body(self._creds),
                headers={HEADER: header, "Content-Type": "application/xml"},
            )
            if not response.is_success:
                raise status_error(response, "logon")
            info = parse_session(parse(response.content, response.headers.get("content-type")))
        fields = parse_header(response.headers.get(HEADER))
        if "sessionid" not in fields or "nonce" not in fields:
            raise TransientError("e-Boks logon: the answer carried no sessionid/nonce")
        self._session = SessionState(info.user_id, fields["sessionid"], fields["nonce"])
        self.logons += 1
        log.info("e-Boks logon succeeded (%s mode)", self._creds.mode.value)
        await self.persist()

    async def aclose(self) -> None:
        if self._loaded:
            await self.persist()
        await self._http.aclose()
