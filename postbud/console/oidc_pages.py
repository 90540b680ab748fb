"""Signing in through the company's identity provider (`[console.oidc]`): off to the provider, back
with a code, into the linked local account. Its profile and organisations are postbud's own."""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

from sqlmodel import col, delete
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from core.oidc_settings import OidcSettings
from core.storage.accounts import OidcPending
from core.storage.models import utcnow
from postbud import locations
from postbud.console import accounts, audit, sessions
from postbud.console.oidc import OidcRefused, RelyingParty
from postbud.console.profiles import home
from postbud.console.web import (PREFIX, SECURITY_HEADERS, Console, client_address, locate, render, secure_cookies,
                                 set_session_cookie)

log = logging.getLogger(__name__)

COOKIE = "postbud_oidc"
# The time a person has at the provider: a return later than this starts over.
ATTEMPT_MINUTES = 10
CALLBACK = "/signin/oidc/callback"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class _Parties:
    """The relying party for the configuration in force; a reload with other settings makes a new one."""

    def __init__(self) -> None:
        self._current: RelyingParty | None = None

    def get(self, settings: OidcSettings) -> RelyingParty:
        if self._current is None or self._current.settings != settings:
            self._current = RelyingParty(settings)
        return self._current


def redirect_uri(request: Request, settings: OidcSettings) -> str:
    return settings.redirect_uri or f"{str(request.base_url).rstrip('/')}{PREFIX}{CALLBACK}"


def _save(console: Console, token: str, state: str, nonce: str, verifier: str, language: str) -> None:
    with console.store.transaction() as session:
        # Attempts nobody came back from are dropped here, so the table stays small without a job.
        session.exec(delete(OidcPending).where(
            col(OidcPending.created_at) < utcnow() - timedelta(minutes=ATTEMPT_MINUTES)))
        session.add(OidcPending(id=_digest(token), state=state, nonce=nonce, verifier=verifier, language=language))


def _take(console: Console, token: str) -> OidcPending | None:
    """The browser's attempt, removed: a return is honoured once."""
    with console.store.transaction() as session:
        row = session.get(OidcPending, _digest(token)) if token and len(token) <= 100 else None
        if row is not None:
            session.delete(row)
            session.flush()
            session.expunge(row)
    if row is None or utcnow() - row.created_at > timedelta(minutes=ATTEMPT_MINUTES):
        return None
    return row


def refusal_page(request: Request, language: str, status: int, reason: str, provider: str, *,
                 identity: str = "") -> Response:
    response = render(request, "oidc_refused.html", viewer=None, language=language, status=status,
                      reason=reason, provider=provider, identity=identity)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


def oidc_routes(console: Console) -> list[Route]:
    parties = _Parties()

    def refuse(request: Request, reason: str, language: str, *, status: int = 400, detail: str = "") -> Response:
        """The attempt failed before anyone was identified: audited under "?" with the reason."""
        settings = console.settings.oidc
        name = settings.display_name if settings else "OpenID Connect"
        log.info("console: sign-in through %s refused (%s) from %s", name, reason, client_address(request))
        audit.note(console.store, "?", "signin_refused", address=client_address(request),
                   detail={"method": "oidc", "reason": reason, **({"detail": detail[:120]} if detail else {})})
        return refusal_page(request, language, status, reason, name)

    async def start(request: Request) -> Response:
        language = "en" if request.query_params.get("lang") == "en" else "da"
        settings = console.settings.oidc
        if settings is None:
            return RedirectResponse(f"{PREFIX}/signin", status_code=303)
        try:
            attempt = await parties.get(settings).begin(redirect_uri(request, settings), language=language)
        except OidcRefused as exc:
            return await run_in_threadpool(refuse, request, exc.reason, language, status=502, detail=exc.detail)
        token = secrets.token_urlsafe(32)
        await run_in_threadpool(_save, console, token, attempt.state, attempt.nonce, attempt.verifier, language)
        response = RedirectResponse(attempt.url, status_code=303)
        # Lax, not Strict: the provider's redirect back is a cross-site navigation, and this cookie must
        # come with it. It names an attempt only; the session cookie stays Strict.
        response.set_cookie(COOKIE, token, path=PREFIX, httponly=True, samesite="lax",
                            secure=secure_cookies(request, console), max_age=ATTEMPT_MINUTES * 60)
        return response

    async def callback(request: Request) -> Response:
        settings = console.settings.oidc
        if settings is None:
            return RedirectResponse(f"{PREFIX}/signin", status_code=303)
        pending = await run_in_threadpool(_take, console, request.cookies.get(COOKIE, ""))
        if pending is None:
            # No attempt from this browser (another browser's link, a replay, too late): the state
            # that came back is not one this browser was sent with.
            return await run_in_threadpool(refuse, request, "state", "da")
        language = pending.language
        if request.query_params.get("error"):
            return await run_in_threadpool(refuse, request, "cancelled", language,
                                           detail=request.query_params["error"])
        try:
            identity = await parties.get(settings).finish(
                str(request.url), state=pending.state, nonce=pending.nonce, verifier=pending.verifier,
                redirect_uri=redirect_uri(request, settings))
        except OidcRefused as exc:
            status = 502 if exc.reason == "provider" else 400
            return await run_in_threadpool(refuse, request, exc.reason, language, status=status, detail=exc.detail)
        address = locate(request, console)
        result = await run_in_threadpool(lambda: accounts.sign_in_identity(
            console.store, identity.value, address=address, detail={"method": "oidc", "identity": identity.value}))
        if result.user is None:  # audited by sign_in_identity, under the identity or the account
            return refusal_page(request, language, 403, result.refused or "unknown", settings.display_name,
                                identity=accounts.identity_key(identity.value))
        user = result.user
        if await run_in_threadpool(locations.refused, console.store, console.config(), user.organisations, address):
            # Trusted locations bind the identity provider's sign-ins too: from a network not authorised
            # for the account's organisations it is refused (a password sign-in there mails a link).
            await run_in_threadpool(lambda: audit.note(console.store, user.username, "signin_location",
                                                       address=address, detail={"method": "oidc"}))
            return refusal_page(request, language, 403, "location", settings.display_name)
        token = await run_in_threadpool(lambda: sessions.start(console.store, user, address=address))
        target = f"{PREFIX}/{home(user.profile).value}"
        # A page that moves on by itself rather than a redirect: this request arrived from the provider's
        # site, and a browser withholds SameSite=Strict cookies from the rest of such a redirect chain;
        # the refresh starts a navigation from our own page, which carries the new session cookie.
        response = HTMLResponse(
            f'<!doctype html><meta http-equiv="refresh" content="0;url={target}">'
            f'<title>postbud</title><p><a href="{target}">postbud</a></p>',
            headers=SECURITY_HEADERS)
        set_session_cookie(response, request, console, token)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    return [Route("/signin/oidc", start, methods=["GET"]), Route(CALLBACK, callback, methods=["GET"])]

