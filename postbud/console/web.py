"""What every console page shares: templates, the signed-in viewer, the profile and CSRF checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
import urllib.parse
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from core.config import Config, ConsoleSettings
from core.recipients import RecipientResolver
from core.storage.db import Store
from postbud import locations
from postbud.console import audit, sessions
from postbud.console.i18n import translator
from postbud.console.profiles import ALLOWED, Area, Profile, allows
from postbud.peers import client_address as peer_address

PREFIX = "/console"
TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                        autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Pages carry no script at all; images are the server's own (charts are inline SVG).
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
}


@dataclass(frozen=True)
class Console:
    """What the pages need from the daemon: the store, the current configuration and recipients."""

    store: Store
    config: Callable[[], Config]
    directory: Callable[[], RecipientResolver | None]

    @property
    def settings(self) -> ConsoleSettings:
        return self.config().console


Handler = Callable[[Request, Console, sessions.Viewer], Awaitable[Response]]


def client_address(request: Request) -> str | None:
    """The client's address: the peer, or behind a configured trusted proxy the forwarded one (set by
    `page` and the sign-in for the request; postbud.peers)."""
    found = getattr(request.state, "client_address", None)
    return found if isinstance(found, str) else request.client.host if request.client else None


def locate(request: Request, console: Console) -> str | None:
    """Work out the client's address once per request (for `client_address`)."""
    address = peer_address(request, console.config().http.trusted_proxies)
    request.state.client_address = address
    return address


def secure_cookies(request: Request, console: Console) -> bool:
    return request.url.scheme == "https" or console.settings.secure_cookies


def set_session_cookie(response: Response, request: Request, console: Console, token: str) -> None:
    # SameSite=Strict keeps the cookie out of every cross-site request.
    response.set_cookie(sessions.COOKIE, token, path=PREFIX, httponly=True, samesite="strict",
                        secure=secure_cookies(request, console),
                        max_age=int(console.settings.absolute_timeout_hours * 3600))


def render(request: Request, template: str, *, viewer: sessions.Viewer | None, status: int = 200,
           language: str | None = None, **context: Any) -> HTMLResponse:
    lang = viewer.language if viewer else (language or "da")
    areas = [a for a in (Area.QUEUE, Area.TRACE, Area.MINE, Area.STATS, Area.HEALTH, Area.USERS, Area.RECIPIENTS,
                                Area.AUDIT)
             if viewer and allows(viewer.profile, a)]
    body = TEMPLATES.get_template(template).render(
        t=translator(lang), lang=lang, viewer=viewer, areas=areas, prefix=PREFIX,
        csrf=viewer.csrf if viewer else "", age=age, when=when, **context)
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def not_found(request: Request, viewer: sessions.Viewer | None) -> HTMLResponse:
    # Not allowed and not existing look the same: a guessed URL tells nothing.
    return render(request, "message.html", viewer=viewer, status=404, heading="not_found", text="")


def page(console: Console, area: Area | tuple[Area, ...], handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: signed in (else to the sign-in page), from a network the viewer's organisations
    admit (trusted locations; else the session ends), the profile reaches `area` (any of them, else
    404), and a POST carries the session's CSRF token (else 403)."""
    wanted = area if isinstance(area, tuple) else (area,)

    async def endpoint(request: Request) -> Response:
        settings = console.settings
        token = request.cookies.get(sessions.COOKIE)
        viewer = await run_in_threadpool(
            sessions.lookup, console.store, token, idle=timedelta(minutes=settings.idle_timeout_minutes),
            absolute=timedelta(hours=settings.absolute_timeout_hours))
        if viewer is None:
            if request.method != "GET":
                return render(request, "message.html", viewer=None, status=401, heading="expired", text="")
            response = RedirectResponse(f"{PREFIX}/signin" + ("?expired=1" if token else ""), status_code=303)
            if token:
                response.delete_cookie(sessions.COOKIE, path=PREFIX)
            return response
        address = locate(request, console)
        refused = await run_in_threadpool(locations.refused, console.store, console.config(),
                                          viewer.organisations, address)
        if refused:
            return await _leave_location(request, console, viewer, token or "", address, refused)
        if not any(allows(viewer.profile, a) for a in wanted):
            return not_found(request, viewer)
        if request.method == "POST":
            if not sessions.csrf_ok(viewer, (await form(request)).get("csrf")):
                return render(request, "message.html", viewer=viewer, status=403, heading="forbidden",
                              text="CSRF")
        return await handler(request, console, viewer)

    return endpoint


async def _leave_location(request: Request, console: Console, viewer: sessions.Viewer, token: str,
                          address: str | None, refused: tuple[str, ...]) -> Response:
    # A session is used from a network its organisations do not admit (moved, or a copied cookie, or
    # the network was withdrawn): it ends, and the sign-in page says why.
    def leave() -> None:
        sessions.end(console.store, token)
        audit.note(console.store, viewer.username, "location_refused", address=address,
                   detail={"organisations": list(refused)})

    await run_in_threadpool(leave)
    response: Response
    if request.method == "GET":
        response = RedirectResponse(f"{PREFIX}/signin?location=1", status_code=303)
    else:
        response = render(request, "message.html", viewer=None, status=403, heading="location", text="")
    response.delete_cookie(sessions.COOKIE, path=PREFIX)
    return response


def may(viewer: sessions.Viewer, area: Area) -> bool:
    return area in ALLOWED.get(Profile(viewer.profile), frozenset())


MAX_FORM = 64 * 1024


async def form(request: Request) -> dict[str, str]:
    """The posted urlencoded form (the console's forms are all small; no multipart, no uploads)."""
    cached = getattr(request.state, "console_form", None)
    if isinstance(cached, dict):
        return cached
    body = await request.body()
    parsed: dict[str, str] = {}
    if len(body) <= MAX_FORM:
        for key, value in urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            parsed.setdefault(key, value)
    request.state.console_form = parsed
    return parsed


async def form_value(request: Request, name: str) -> str:
    return (await form(request)).get(name, "").strip()


def keyset(request: Request, name: str) -> tuple[datetime, str] | None:
    """A page's start from `?NAME=RECEIVED_AT~ID` (the last row of the page before); None: the first page,
    also when the value is unreadable."""
    at, _, message_id = request.query_params.get(name, "").partition("~")
    try:
        parsed = datetime.fromisoformat(at) if at and message_id else None
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc), message_id[:32]) if parsed else None


def age(at: datetime, now: datetime | None = None) -> str:
    seconds = ((now or datetime.now(timezone.utc)) - at).total_seconds()
    hours = seconds / 3600
    return f"{hours / 24:.1f} d" if hours >= 48 else f"{hours:.1f} t" if hours >= 1 else f"{seconds / 60:.0f} m"


def when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else value
    return text[:16].replace("T", " ")
