"""Signing in and out, and the person's own language setting."""

from __future__ import annotations

from datetime import timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from postbud.console import accounts, sessions
from postbud.console.profiles import home
from postbud.console.sessions import Viewer
from postbud.console.web import PREFIX, Console, client_address, form_value, page, render


def _secure(request: Request, console: Console) -> bool:
    return request.url.scheme == "https" or console.settings.secure_cookies


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
            flash = "expired" if request.query_params.get("expired") else ""
            return render(request, "signin.html", viewer=None, language=lang, flash=flash)
        username = (await form_value(request, "username"))[:64]
        password = await form_value(request, "password")
        settings = console.settings
        result = await run_in_threadpool(lambda: accounts.authenticate(
            console.store, username, password, address=client_address(request),
            max_failures=settings.max_failed_signins, window_minutes=settings.throttle_window_minutes))
        if result.user is None:
            status = 429 if result.refused == "throttled" else 401
            return render(request, "signin.html", viewer=None, language=lang, flash=result.refused or "wrong",
                          status=status)
        user = result.user
        token = await run_in_threadpool(lambda: sessions.start(console.store, user, address=client_address(request)))
        response = RedirectResponse(f"{PREFIX}/{home(user.profile).value}", status_code=303)
        # The sign-in form needs no CSRF token: it grants nothing to a forger but the forger's own session.
        # SameSite=Strict keeps the cookie out of every cross-site request.
        response.set_cookie(sessions.COOKIE, token, path=PREFIX, httponly=True, samesite="strict",
                            secure=_secure(request, console),
                            max_age=int(settings.absolute_timeout_hours * 3600))
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
