"""The read-only HTTP API: trace search and show as JSON, behind one bearer token per organisation.

    GET /api/v1/messages?sender=&recipient=&channel=&status=&since=&until=&text=&mailbox=&provider=&limit=
    GET /api/v1/messages/{id}

A token belongs to exactly one organisation and every query is confined to it: another
organisation's message is "404 not found", never "403", so ids cannot be probed. No or a wrong
token is 401. An organisation with trusted locations switched on admits its tokens only from the
networks it has authorised (postbud.locations): from anywhere else a valid token gets 403. Tokens are compared as SHA-256 digests in constant time, against every configured
token, so the time taken tells nothing about how close a guess was.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from core.config import Config
from core.settings import SecretRef
from core.metrics import Metrics
from core.storage.db import Store
from postbud import locations
from postbud.peers import client_address
from postbud.trace import SearchFilter, search, show

PREFIX = "/api/v1"
MAX_LIMIT = 500


class TokenError(ValueError):
    """The token configuration is unusable (empty or shared between organisations)."""


@dataclass(frozen=True)
class TokenTable:
    """SHA-256 digests of the configured tokens, each with its organisation's CVR."""

    entries: tuple[tuple[bytes, str], ...]

    @classmethod
    def from_tokens(cls, tokens: Mapping[str, Iterable[str]]) -> TokenTable:
        """`tokens` maps a CVR to its tokens (several, so a token can be rotated without downtime)."""
        entries: dict[bytes, str] = {}
        for cvr, values in tokens.items():
            for token in values:
                if len(token) < 16:
                    raise TokenError(f"API token for {cvr} is too short (at least 16 characters)")
                digest = _digest(token)
                if entries.get(digest, cvr) != cvr:
                    raise TokenError(f"the same API token is configured for {entries[digest]} and {cvr}")
                entries[digest] = cvr
        return cls(tuple(entries.items()))

    @classmethod
    def from_refs(cls, refs: Mapping[str, Iterable[SecretRef]]) -> TokenTable:
        """From the configuration's secret references, revealed once at start."""
        return cls.from_tokens({cvr: [ref.reveal() for ref in values] for cvr, values in refs.items()})

    def organisation(self, presented: str) -> str | None:
        digest = _digest(presented)
        found = None
        for known, cvr in self.entries:  # no early exit: every request costs the same
            if hmac.compare_digest(digest, known):
                found = cvr
        return found


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class BadRequest(ValueError):
    pass


def _time(params: Mapping[str, str], name: str) -> datetime | None:
    value = params.get(name)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date or time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def search_filter(params: Mapping[str, str], organisation: str) -> SearchFilter:
    """The query string as a search confined to `organisation` (an `organisation` parameter is ignored)."""
    unknown = set(params) - {"mailbox", "provider", "sender", "recipient", "channel", "status", "since",
                             "until", "text", "limit"}
    if unknown:
        raise BadRequest(f"unknown parameter: {', '.join(sorted(unknown))}")
    try:
        limit = int(params.get("limit", "100"))
    except ValueError:
        raise BadRequest("limit must be a number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    return SearchFilter(
        organisation=organisation,
        mailbox=params.get("mailbox") or None,
        provider=params.get("provider") or None,
        sender=params.get("sender") or None,
        status=params.get("status") or None,
        since=_time(params, "since"),
        until=_time(params, "until"),
        text=params.get("text") or None,
        limit=limit,
        recipient=params.get("recipient") or None,
        channel=params.get("channel") or None,
    )


def api_mount(store: Store, tokens: TokenTable, metrics: Metrics | None = None,
              config: Callable[[], Config] | None = None) -> Mount:
    """The API as a starlette Mount at /api/v1, for `Starlette(routes=[..., api_mount(...)])`. With
    `config` (called per request, so a reload reaches it), trusted locations and proxies apply."""

    def count(endpoint: str, outcome: str) -> None:
        if metrics is not None:
            metrics.api_requests.labels(endpoint, outcome).inc()

    async def authorize(request: Request, endpoint: str) -> str | Response:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        cvr = tokens.organisation(presented.strip()) if scheme.lower() == "bearer" and presented else None
        if cvr is None:
            count(endpoint, "unauthorized")
            return JSONResponse({"error": "a valid bearer token is required"}, status_code=401,
                                headers={"WWW-Authenticate": 'Bearer realm="postbud"'})
        if config is not None:
            current = config()
            address = client_address(request, current.http.trusted_proxies)
            if await asyncio.to_thread(locations.refused, store, current, (cvr,), address):
                count(endpoint, "location_refused")
                return JSONResponse({"error": f"this network ({address}) is not authorised for the token's "
                                              "organisation"}, status_code=403)
        return cvr

    async def list_messages(request: Request) -> Response:
        cvr = await authorize(request, "search")
        if isinstance(cvr, Response):
            return cvr
        try:
            flt = search_filter(request.query_params, cvr)
        except BadRequest as exc:
            count("search", "bad_request")
            return JSONResponse({"error": str(exc)}, status_code=400)
        rows = await asyncio.to_thread(search, store, flt)
        count("search", "ok")
        return _json(rows)

    async def show_message(request: Request) -> Response:
        cvr = await authorize(request, "show")
        if isinstance(cvr, Response):
            return cvr
        message_id = request.path_params["message_id"]
        found = None
        # Whole ids only: a prefix would let one organisation learn that another's id exists.
        if len(message_id) == 32:
            found = await asyncio.to_thread(show, store, message_id, organisation=cvr)
        if found is None:
            count("show", "not_found")
            return JSONResponse({"error": "no such message"}, status_code=404)
        count("show", "ok")
        return _json(found)

    return Mount(PREFIX, routes=[
        Route("/messages", list_messages, methods=["GET"]),
        Route("/messages/{message_id}", show_message, methods=["GET"]),
    ])


def _json(data: Any) -> Response:
    return JSONResponse(data, headers={"Cache-Control": "no-store"})
