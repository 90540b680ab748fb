"""The authenticated channel to mit.dk: token headers on every call, refresh before expiry and on 401."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import httpx

from connectors.base import AuthError, StateStore, TransientError
from connectors.mitdk import tokens
from connectors.mitdk.errors import status_error, translated
from connectors.mitdk.settings import MitdkSettings

log = logging.getLogger(__name__)


class MitdkClient:
    """Calls mit.dk's `/view/client/` API for one mailbox's token pair; `data` is the persisted state."""

    def __init__(self, settings: MitdkSettings, store: StateStore, *, clock: Callable[[], float] = time.time,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock
        try:
            verify: ssl.SSLContext | bool = (
                ssl.create_default_context(cafile=str(settings.ca_file)) if settings.ca_file else True
            )
        except (OSError, ssl.SSLError) as exc:
            raise AuthError(f"mit.dk: cannot read ca_file ({exc}); fix the configuration") from exc
        self._http = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/") + "/",
            verify=verify,
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            headers={"Accept": "application/json", "platform": "web"},
            transport=transport,
        )
        self._lock = asyncio.Lock()
        self._pair: tokens.Pair | None = None
        self._seed = tokens.seed_fingerprint(settings.dpp_refresh_token, settings.ngdp_refresh_token)
        self.data: dict[str, Any] = {}
        self.refreshes = 0
        # What the last refresh granted: a margin longer than half of it would refresh at every call.
        self._lifetime = tokens.DEFAULT_LIFETIME

    async def _load(self) -> tokens.Pair:
        if self._pair is None:
            self.data = dict(await self._store.load())
            stored = tokens.from_state(self.data) if self.data.get("seed") == self._seed else None
            # No stored chain (or one from an earlier onboarding): start from the configured tokens.
            self._pair = stored or {
                "dpp": tokens.Token("", self._settings.dpp_refresh_token, 0.0),
                "ngdp": tokens.Token("", self._settings.ngdp_refresh_token, 0.0),
            }
        return self._pair

    def _due(self, pair: tokens.Pair, rejected: str | None) -> bool:
        expires = min(t.expires_on for t in pair.values())
        margin = min(self._settings.refresh_margin, self._lifetime / 2)
        due = not pair["dpp"].access_token or self._clock() >= expires - margin
        # After a 401, refresh only if nobody refreshed since that request was sent.
        return due or (rejected is not None and pair["dpp"].access_token == rejected)

    async def _fresh(self, *, rejected: str | None = None) -> tokens.Pair:
        """A usable pair: refreshed when missing, within the margin of expiry, or just rejected."""
        async with self._lock:
            pair = await self._load()
            if self._due(pair, rejected):
                # Another instance (or `connectors probe`) may have refreshed meanwhile and retired the
                # refresh token held here: the stored chain is the truth.
                self._pair = None
                pair = await self._load()
                if self._due(pair, rejected):
                    pair = await self._refresh(pair)
            return pair

    async def _refresh(self, pair: tokens.Pair) -> tokens.Pair:
        what = "token refresh"
        with translated(what):
            response = await self._http.post(
                "authorization/refresh", params={"client_id": self._settings.client_id},
                json={"dppRefreshToken": pair["dpp"].refresh_token,
                      "ngdpRefreshToken": pair["ngdp"].refresh_token},
            )
            if response.status_code in (408, 429) or response.status_code >= 500:
                raise status_error(response, what)
            try:
                body = json.loads(response.content)
            except (ValueError, UnicodeDecodeError) as exc:
                if response.status_code in (401, 403):
                    raise status_error(response, what) from exc
                raise TransientError(f"mit.dk {what}: the answer was not JSON "
                                     f"({response.headers.get('content-type', 'no content type')})") from exc
            if not response.is_success or tokens.is_refusal(body):
                code = body.get("code") if isinstance(body, dict) else None
                raise AuthError(f"mit.dk {what}: refused (HTTP {response.status_code}, code {code}); the "
                                "refresh chain has lapsed, onboard this mailbox again with MitID")
            now = self._clock()
        new = tokens.parse_refresh(body, now)
        self._lifetime = max(0.0, min(t.expires_on for t in new.values()) - now)
        if self._lifetime < 2 * self._settings.refresh_margin:
            log.info("mit.dk grants tokens for %.0fs, less than twice refresh_margin (%.0fs): refreshing at "
                     "half their life instead", self._lifetime, self._settings.refresh_margin)
        self._pair = new
        self.data.update(seed=self._seed, tokens=tokens.to_state(new))
        # Saved before first use: the old refresh tokens are already retired on the server.
        await self._store.save(dict(self.data))
        self.refreshes += 1
        until = datetime.fromtimestamp(min(t.expires_on for t in new.values()), timezone.utc)
        log.info("mit.dk tokens refreshed, valid until %s", until.isoformat(timespec="seconds"))
        return new

    async def request(self, method: str, path: str, *, what: str, body: Any = None,
                      headers: dict[str, str] | None = None,
                      accept: frozenset[int] = frozenset()) -> httpx.Response:
        """One API call with the token headers; a 401 refreshes the pair and retries once."""
        for attempt in range(2):
            pair = await self._fresh()
            auth = {"mitdkToken": pair["dpp"].access_token, "ngdpToken": pair["ngdp"].access_token}
            with translated(what):
                response = await self._http.request(method, path, json=body, headers={**auth, **(headers or {})})
            if response.status_code == 401 and attempt == 0:
                log.info("mit.dk refused the access token (%s); refreshing", what)
                await self._fresh(rejected=pair["dpp"].access_token)
                continue
            if response.is_success or response.status_code in accept:
                return response
            raise status_error(response, what)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self._http.aclose()

