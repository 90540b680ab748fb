"""Signing in and out, and the person's own language setting."""

from __future__ import annotations

from datetime import timedelta

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from core.storage.accounts import ConsoleUser
from postbud import location_links, locations
from postbud.console import accounts, sessions
from postbud.console.profiles import home
from postbud.console.sessions import Viewer
from postbud.console.web import PREFIX, Console, form_value, locate, page, render, set_session_cookie


def _link_task(console: Console, user: ConsoleUser, address: str | None) -> BackgroundTask | None:
    config = console.config()
    refused = locations.refused(console.store, config, user.organisations, address)
    issued = location_links.issue(console.store, user, refused, address or "",
                                  valid=timedelta(minutes=config.console.location_link_minutes))
    if issued is None:  # no address to mail to: an administrator authorises the network
        return None
    return BackgroundTask(location_links.send, issued, config, console.store)


def signin_routes(console: Console) -> list[Route]:
    async def signin(request: Request) -> Response:
        lang = "en" if request.query_params.get("lang") == "en" else "da"
        if request.method == "GET":
            current = await run_in_threadpool(
                sessions.lookup, console.store, request.cookies.get(sessions.COOKIE),
                idle=timedelta(minutes=console.settings.idle_timeout_minutes),
                absolute=timedelta(hours=console.settings.absolute_timeout_hours))
            if current is not None:
                return RedirectResponse(f"{PREFIX}/{home(current.profile).value}", status_code=303)
            flash = next((f for f in ("expired", "location", "authorised") if request.query_params.get(f)), "")
            return render(request, "signin.html", viewer=None, language=lang, flash=flash,
                          good=flash == "authorised", oidc=console.settings.oidc)
        username = (await form_value(request, "username"))[:64]
        password = await form_value(request, "password")
        settings = console.settings
        address = locate(request, console)

        def located(user: ConsoleUser) -> bool:
            return not locations.refused(console.store, console.config(), user.organisations, address)

        result = await run_in_threadpool(lambda: accounts.authenticate(
            console.store, username, password, address=address, located=located,
            max_failures=settings.max_failed_signins, window_minutes=settings.throttle_window_minutes))
        if result.unlocated is not None:
            # Right or wrong password, the same answer: from an unauthorised network the page must not
            # tell a guesser that the password was right. Only the right one gets a link, mailed after
            # the answer has gone, so the time taken tells nothing either.
            task = None
            if result.refused == "location":
                task = await run_in_threadpool(_link_task, console, result.unlocated, address)
            refusal = render(request, "signin.html", viewer=None, language=lang, flash="location_new", status=403)
            refusal.background = task
            return refusal
        if result.user is None:
            status = 429 if result.refused == "throttled" else 401
            return render(request, "signin.html", viewer=None, language=lang, flash=result.refused or "wrong",
                          status=status, oidc=console.settings.oidc)
        user = result.user
        token = await run_in_threadpool(lambda: sessions.start(console.store, user, address=address))
        response = RedirectResponse(f"{PREFIX}/{home(user.profile).value}", status_code=303)
        # The sign-in form needs no CSRF token: it grants nothing to a forger but the forger's own session.
        set_session_cookie(response, request, console, token)
        return response

    async def signout(request: Request, console: Console, viewer: Viewer) -> Response:
        token = request.cookies.get(sessions.COOKIE, "")
        everywhere = request.url.path.endswith("everywhere")
        if everywhere:
            await run_in_threadpool(sessions.end_all, console.store, viewer.user_id)
        else:
            await run_in_threadpool(sessions.end, console.store, token)
        response = RedirectResponse(f"{PREFIX}/signin", status_code=303)
        response.delete_cookie(sessions.COOKIE, path=PREFIX)
        return response

    async def language(request: Request, console: Console, viewer: Viewer) -> Response:
        chosen = await form_value(request, "language")
        try:
            await run_in_threadpool(lambda: accounts.set_language(console.store, viewer.username, chosen,
                                                                  actor=viewer.username))
        except accounts.AccountError:
            pass  # only da and en are offered; anything else changes nothing
        back = request.headers.get("referer", "")
        return RedirectResponse(back if back.startswith(f"{request.base_url}console") else f"{PREFIX}/",
                                status_code=303)

    async def root(request: Request, console: Console, viewer: Viewer) -> Response:
        return RedirectResponse(f"{PREFIX}/{home(viewer.profile).value}", status_code=303)

    from postbud.console.profiles import Area

    anyone = tuple(Area)
    return [
        Route("/signin", signin, methods=["GET", "POST"]),
        Route("/signout", page(console, anyone, signout), methods=["POST"]),
        Route("/signout/everywhere", page(console, anyone, signout), methods=["POST"]),
        Route("/language", page(console, anyone, language), methods=["POST"]),
        Route("/", page(console, anyone, root), methods=["GET"]),
    ]
