"""The manual queue pages: held letters oldest first, one letter with its suggestions, placing it."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from postbud.console import audit, queue_data
from postbud.console.profiles import Area
from postbud.console.sessions import Viewer
from postbud.console.web import PREFIX, Console, client_address, form_value, keyset, not_found, page, render
from router.queue import NotHeld, assign, resolve_recipient


async def queue_list(request: Request, console: Console, viewer: Viewer) -> Response:
    after = keyset(request, "after")
    size = console.settings.page_size
    rows, total = await run_in_threadpool(lambda: queue_data.held_page(console.store, viewer.organisations,
                                                                       after=after, limit=size))
    following = f"{rows[-1].received_at.isoformat()}~{rows[-1].id}" if len(rows) == size else None
    return render(request, "queue.html", viewer=viewer, rows=rows, total=total, paged=after is not None,
                  following=following)


async def letter_page(request: Request, console: Console, viewer: Viewer, *, flash: str = "",
                      status: int = 200) -> Response:
    found = await run_in_threadpool(queue_data.letter, console.store, str(request.path_params["message_id"]),
                                    viewer.organisations)
    if found is None:
        return not_found(request, viewer)
    people, groups = queue_data.choices(console.directory(), found.row.organisation)
    return render(request, "letter.html", viewer=viewer, letter=found, people=people, groups=groups,
                  flash=flash, status=status)


async def preview(request: Request, console: Console, viewer: Viewer) -> Response:
    found = await run_in_threadpool(queue_data.letter, console.store, str(request.path_params["message_id"]),
                                    viewer.organisations)
    if found is None or found.preview_png is None:
        return not_found(request, viewer)
    return Response(found.preview_png, media_type="image/png", headers={"Cache-Control": "no-store"})


async def place(request: Request, console: Console, viewer: Viewer) -> Response:
    message_id = str(request.path_params["message_id"])
    found = await run_in_threadpool(queue_data.letter, console.store, message_id, viewer.organisations)
    if found is None:
        # Placed by someone else a moment ago (or never ours): say so rather than a bare 404.
        exists = await run_in_threadpool(queue_data.next_held, console.store, viewer.organisations)
        return render(request, "message.html", viewer=viewer, status=409, heading="already_placed", text="",
                      next_id=exists)
    org = found.row.organisation
    # A typed name wins over the dropdown; it is matched fuzzily against the approved names and aliases.
    typed = await form_value(request, "typed") or await form_value(request, "recipient")
    directory = console.directory()
    target = approved_target(directory, org, typed)
    if target is None:
        return await letter_page(request, console, viewer, flash="unknown_recipient", status=400)
    config = console.config()
    try:
        await run_in_threadpool(lambda: assign(console.store, message_id, [target], actor=f"console:{viewer.username}",
                                               directory=directory, channels=config.delivery.channels))
    except NotHeld:
        return render(request, "message.html", viewer=viewer, status=409, heading="already_placed", text="")
    await run_in_threadpool(lambda: audit.note(console.store, viewer.username, "placed",
                                               address=client_address(request), organisation=org,
                                               message_id=message_id, detail={"recipient": target}))
    following = await run_in_threadpool(queue_data.next_held, console.store, viewer.organisations,
                                        after=message_id)
    where = f"{PREFIX}/queue/{following}" if following else f"{PREFIX}/queue"
    return RedirectResponse(f"{where}?placed={target}", status_code=303)


def approved_target(directory: object, org: str, typed: str) -> str | None:
    """The recipient or group id chosen (or typed, matched fuzzily as `queue assign` does), if approved."""
    from core.recipients import RecipientResolver

    if not typed or not isinstance(directory, RecipientResolver):
        return None
    ids = directory.ids(org)
    if typed in ids:
        return typed
    names = {**{g: [g] for g in directory.groups(org)}, **directory.names(org)}
    resolution = resolve_recipient(typed, names)
    return resolution.recipient if resolution.recipient in ids else None


def routes(console: Console) -> list[Route]:
    return [
        Route("/queue", page(console, Area.QUEUE, queue_list), methods=["GET"]),
        Route("/queue/{message_id}", page(console, Area.QUEUE, letter_page), methods=["GET"]),
        Route("/queue/{message_id}/preview.png", page(console, Area.QUEUE, preview), methods=["GET"]),
        Route("/queue/{message_id}/place", page(console, Area.PLACE, place), methods=["POST"]),
    ]
