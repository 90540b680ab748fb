"""Trusted locations in the console: the page a mailed link opens (postbud.location_links) and the
administrators' list of authorised networks, where they authorise or withdraw one (postbud.locations)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from postbud import location_links, locations
from postbud.console.profiles import Area
from postbud.console.sessions import Viewer
from postbud.console.web import PREFIX, Console, client_address, form, locate, page, render

# A refused link: what the page says, and its status (a spent or unknown link is gone; another network
# is forbidden, and that link still works from its own network).
REFUSALS = {"unknown": 410, "used": 410, "expired": 410, "disabled": 410, "network": 403}


async def open_link(request: Request, console: Console) -> Response:
    token = request.path_params["token"]
    lang = "en" if request.query_params.get("lang") == "en" else "da"
    if request.method == "GET":
        # Opening the page changes nothing (mail scanners fetch links); the button posts.
        link = await run_in_threadpool(location_links.pending, console.store, token)
        if link is None:
            return render(request, "message.html", viewer=None, language=lang, status=410,
                          heading="link_unknown", text="")
        return render(request, "location.html", viewer=None, language=lang, network=link.network, token=token)
    address = locate(request, console)
    try:
        await run_in_threadpool(location_links.redeem, console.store, console.config(), token, address)
    except location_links.LinkRefused as refused:
        return render(request, "message.html", viewer=None, language=lang, status=REFUSALS[refused.reason],
                      heading=f"link_{refused.reason}", text="")
    return RedirectResponse(f"{PREFIX}/signin?authorised=1", status_code=303)


async def locations_page(request: Request, console: Console, viewer: Viewer, *, flash: str = "",
                         status: int = 200) -> Response:
    config = console.config()
    rows = await run_in_threadpool(locations.authorised, console.store, config, viewer.organisations)
    switched_on = set(locations.guarded(config, viewer.organisations))
    return render(request, "locations.html", viewer=viewer, active="users", networks=rows, flash=flash,
                  organisations=viewer.organisations, switched_on=switched_on, address=client_address(request),
                  status=status)


async def change(request: Request, console: Console, viewer: Viewer) -> Response:
    posted = await form(request)
    org, network = posted.get("organisation", ""), posted.get("network", "")
    if org not in viewer.organisations:
        return await locations_page(request, console, viewer, flash="choose one of your own organisations", status=400)
    act = locations.remove if request.url.path.endswith("/remove") else locations.authorise
    try:
        await run_in_threadpool(lambda: act(console.store, console.config(), org, network, actor=viewer.username,
                                            address=client_address(request), via="console"))
    except locations.LocationError as exc:
        return await locations_page(request, console, viewer, flash=str(exc), status=400)
    return RedirectResponse(f"{PREFIX}/locations", status_code=303)


def routes(console: Console) -> list[Route]:
    async def link(request: Request) -> Response:
        return await open_link(request, console)

    return [
        Route("/location/{token}", link, methods=["GET", "POST"]),
        Route("/locations", page(console, Area.USERS, locations_page), methods=["GET"]),
        Route("/locations/add", page(console, Area.USERS, change), methods=["POST"]),
        Route("/locations/remove", page(console, Area.USERS, change), methods=["POST"]),
    ]
