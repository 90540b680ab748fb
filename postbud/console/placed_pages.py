"""Placed letters for the people who work the queue: the newest placements with resend, and the
correction page that re-places a letter routed to the wrong recipient (it teaches the model)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from postbud.console import audit, placed_data, queue_data
from postbud.console.profiles import Area
from postbud.console.queue_pages import approved_target
from postbud.console.sessions import Viewer
from postbud.console.web import (
    PREFIX, Console, client_address, form_value, keyset, may, not_found, page, render,
)
from postbud.corrections import correct_and_review
from router.correction import NotCorrectable


async def placed_list(request: Request, console: Console, viewer: Viewer) -> Response:
    size = console.settings.page_size
    rows = await run_in_threadpool(lambda: placed_data.placed_page(console.store, viewer.organisations,
                                                                   before=keyset(request, "before"), limit=size))
    following = f"{rows[-1].received_at.isoformat()}~{rows[-1].id}" if len(rows) == size else None
    directory = console.directory()
    others = {org: sorted(directory.names(org)) for org in viewer.organisations} if directory else {}
    return render(request, "placed.html", viewer=viewer, active="queue", rows=rows, following=following,
                  can_resend=may(viewer, Area.RESEND), can_correct=may(viewer, Area.PLACE), others=others,
                  flash=request.query_params.get("done", ""))


async def correction_page(request: Request, console: Console, viewer: Viewer, *, flash: str = "",
                          status: int = 200) -> Response:
    found = await run_in_threadpool(placed_data.placed_letter, console.store, str(request.path_params["message_id"]),
                                    viewer.organisations)
    if found is None:
        return not_found(request, viewer)
    people, groups = queue_data.choices(console.directory(), found.organisation)
    return render(request, "correct.html", viewer=viewer, active="queue", letter=found, people=people,
                  groups=groups, flash=flash, status=status)


async def correct_action(request: Request, console: Console, viewer: Viewer) -> Response:
    message_id = str(request.path_params["message_id"])
    found = await run_in_threadpool(placed_data.placed_letter, console.store, message_id, viewer.organisations)
    if found is None:
        return not_found(request, viewer)
    directory = console.directory()
    typed = await form_value(request, "typed") or await form_value(request, "recipient")
    target = approved_target(directory, found.organisation, typed)
    if target is None:
        return await correction_page(request, console, viewer, flash="unknown_recipient", status=400)
    actor = f"console:{viewer.username}"
    try:
        done, paused = await run_in_threadpool(lambda: correct_and_review(
            console.store, console.config(), message_id, [target], actor=actor, directory=directory))
    except NotCorrectable as exc:
        return render(request, "message.html", viewer=viewer, status=409, heading="correct", text=str(exc))
    await run_in_threadpool(lambda: audit.note(
        console.store, viewer.username, "corrected", address=client_address(request),
        organisation=found.organisation, message_id=message_id,
        detail={"recipient": target, "overruled": done.overruled, "previous": list(done.previous),
                **({"model_paused": paused} if paused else {})}))
    return RedirectResponse(f"{PREFIX}/placed?done=corrected", status_code=303)


def routes(console: Console) -> list[Route]:
    return [
        Route("/placed", page(console, Area.QUEUE, placed_list), methods=["GET"]),
        Route("/correct/{message_id}", page(console, Area.PLACE, correction_page), methods=["GET"]),
        Route("/correct/{message_id}", page(console, Area.PLACE, correct_action), methods=["POST"]),
    ]
