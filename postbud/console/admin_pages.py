"""The administrators' pages: the organisation's accounts (add, disable) and the audit trail."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from postbud.console import accounts, audit
from postbud.console.profiles import Area, Profile
from postbud.console.sessions import Viewer
from postbud.console.web import PREFIX, Console, form, form_value, page, render


async def users_page(request: Request, console: Console, viewer: Viewer, *, flash: str = "",
                     status: int = 200) -> Response:
    rows = await run_in_threadpool(lambda: accounts.users(console.store, organisations=viewer.organisations))
    return render(request, "users.html", viewer=viewer, active="users", users=rows, profiles=[p.value for p in Profile],
                  organisations=viewer.organisations, flash=flash, status=status)


async def add_user(request: Request, console: Console, viewer: Viewer) -> Response:
    posted = await form(request)
    org = posted.get("organisation", "")
    if org not in viewer.organisations:
        return await users_page(request, console, viewer, flash="grant one of your own organisations", status=400)
    try:
        await run_in_threadpool(lambda: accounts.add_user(
            console.store, posted.get("username", "").strip(), posted.get("password", ""),
            profile=posted.get("profile", ""), organisations=[org], recipient=posted.get("recipient") or None,
            language=posted.get("language", "da"), actor=viewer.username, email=posted.get("email") or None))
    except accounts.AccountError as exc:
        return await users_page(request, console, viewer, flash=str(exc), status=400)
    return RedirectResponse(f"{PREFIX}/users", status_code=303)


async def disable_user(request: Request, console: Console, viewer: Viewer) -> Response:
    name = await form_value(request, "username")
    theirs = await run_in_threadpool(lambda: accounts.users(console.store, organisations=viewer.organisations))
    # Only an account wholly within the administrator's organisations: no reaching into another's.
    target = next((u for u in theirs if u.username == name and set(u.organisations) <= set(viewer.organisations)),
                  None)
    if target is None:
        return await users_page(request, console, viewer, flash=f"no account {name} in your organisations",
                                status=400)
    await run_in_threadpool(lambda: accounts.disable(console.store, name, actor=viewer.username))
    return RedirectResponse(f"{PREFIX}/users", status_code=303)


async def audit_page(request: Request, console: Console, viewer: Viewer) -> Response:
    people = await run_in_threadpool(lambda: accounts.users(console.store, organisations=viewer.organisations))
    names = {u.username for u in people}
    events = await run_in_threadpool(lambda: audit.recent(console.store, organisations=viewer.organisations,
                                                          limit=console.settings.page_size * 4))
    # Events without an organisation (sign-ins) are shown only for the organisations' own people.
    shown = [e for e in events if e.organisation_cvr is not None or e.username in names]
    return render(request, "audit.html", viewer=viewer, active="audit", events=shown)


def routes(console: Console) -> list[Route]:
    return [
        Route("/users", page(console, Area.USERS, users_page), methods=["GET"]),
        Route("/users/add", page(console, Area.USERS, add_user), methods=["POST"]),
        Route("/users/disable", page(console, Area.USERS, disable_user), methods=["POST"]),
        Route("/audit", page(console, Area.AUDIT, audit_page), methods=["GET"]),
    ]
