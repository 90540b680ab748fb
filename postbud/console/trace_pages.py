"""Track and trace pages: search, a letter's timeline in words, resend and download of the originals."""

from __future__ import annotations

from datetime import datetime, timezone

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from postbud import trace
from postbud.console import audit, placed_data, trace_data
from postbud.console.profiles import Area
from postbud.console.sessions import Viewer
from postbud.console.web import PREFIX, Console, client_address, form_value, may, not_found, page, render
from postbud.explain import explanation_lines
from postbud.trace_actions import TraceActionError, resend

FIELDS = ("cvr", "mailbox", "provider", "sender", "recipient", "channel", "status", "since", "until", "text")


def _time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None  # an unreadable date filters nothing rather than failing the page
    return parsed.replace(tzinfo=timezone.utc) if parsed and parsed.tzinfo is None else parsed


async def search_page(request: Request, console: Console, viewer: Viewer) -> Response:
    q = {f: request.query_params.get(f, "").strip()[:200] for f in FIELDS}
    before = _time(request.query_params.get("before", ""))
    size = console.settings.page_size
    if not may(viewer, Area.TRACE):  # a delivery account: its own letters, nothing to search
        rows = await run_in_threadpool(lambda: trace_data.mine(console.store, viewer, limit=size + 1,
                                                               before=before))
        more = len(rows) > size
        return render(request, "trace.html", viewer=viewer, active="mine", q=q, rows=rows[:size], more=more,
                      searchable=False)
    until = _time(q["until"])
    flt = trace.SearchFilter(
        organisation=q["cvr"] or None, mailbox=q["mailbox"] or None, provider=q["provider"] or None,
        sender=q["sender"] or None, status=q["status"] or None, since=_time(q["since"]),
        # Keyset paging: the next page is what came before the last row shown.
        until=min(t for t in (until, before) if t) if (until or before) else None,
        text=q["text"] or None, limit=size, recipient=q["recipient"] or None, channel=q["channel"] or None)
    found = await run_in_threadpool(trace_data.search, console.store, flt, viewer.organisations)
    return render(request, "trace.html", viewer=viewer, active="trace", q=q, rows=found.rows,
                  more=found.truncated, searchable=True, organisations=viewer.organisations)


async def letter_page(request: Request, console: Console, viewer: Viewer, *, flash: str = "",
                      status: int = 200) -> Response:
    message_id = str(request.path_params["message_id"])
    only_mine = not may(viewer, Area.TRACE)
    found = await run_in_threadpool(lambda: trace_data.letter(console.store, message_id, viewer, only_mine=only_mine))
    if found is None:
        return not_found(request, viewer)
    documents = only_mine or may(viewer, Area.DOCUMENTS)
    text = await run_in_threadpool(trace_data.text_of, console.store, found["id"]) if documents else ""
    why = [line for d in found["decisions"] for line in explanation_lines(d.get("explanation") or {})]
    directory = console.directory()
    others = sorted(directory.names(found["organisation"])) if directory and may(viewer, Area.RESEND) else []
    return render(request, "trace_letter.html", viewer=viewer, active="mine" if only_mine else "trace",
                  m=found, why=why, text=text, documents=documents, can_resend=may(viewer, Area.RESEND),
                  can_correct=may(viewer, Area.PLACE) and found["status"] in placed_data.PLACED,
                  others=others, flash=flash or request.query_params.get("done", ""), status=status)


async def resend_action(request: Request, console: Console, viewer: Viewer) -> Response:
    message_id = str(request.path_params["message_id"])
    found = await run_in_threadpool(lambda: trace_data.letter(console.store, message_id, viewer, only_mine=False))
    if found is None:
        return not_found(request, viewer)
    org = found["organisation"]
    to = await form_value(request, "to") or None
    channel = None
    directory = console.directory()
    if to is not None:
        if directory is None or to not in directory.names(org):
            if may(viewer, Area.TRACE):
                return await letter_page(request, console, viewer, flash="unknown_recipient", status=400)
            return render(request, "message.html", viewer=viewer, status=400, heading="unknown_recipient", text="")
        channel = directory.channel(org, to, enabled=console.config().delivery.channels)
    try:
        await run_in_threadpool(lambda: resend(console.store, message_id, actor=f"console:{viewer.username}",
                                               to=to, channel=channel))
    except TraceActionError as exc:
        return render(request, "message.html", viewer=viewer, status=409, heading="resend", text=str(exc))
    await run_in_threadpool(lambda: audit.note(console.store, viewer.username, "resent",
                                               address=client_address(request), organisation=org,
                                               message_id=message_id, detail={"to": to or "routed recipients"}))
    if not may(viewer, Area.TRACE):  # processing: back to the placed letters it resends from
        return RedirectResponse(f"{PREFIX}/placed?done=resent", status_code=303)
    return RedirectResponse(f"{PREFIX}/trace/{message_id}?done=resent", status_code=303)


async def download(request: Request, console: Console, viewer: Viewer) -> Response:
    message_id = str(request.path_params["message_id"])
    only_mine = not may(viewer, Area.TRACE)
    if not only_mine and not may(viewer, Area.DOCUMENTS):
        return not_found(request, viewer)  # feedback: the trace without documents
    found = await run_in_threadpool(lambda: trace_data.letter(console.store, message_id, viewer, only_mine=only_mine))
    if found is None:
        return not_found(request, viewer)
    body = await run_in_threadpool(lambda: trace_data.originals_zip(console.store, message_id,
                                                                    actor=f"console:{viewer.username}"))
    if body is None:
        return not_found(request, viewer)
    await run_in_threadpool(lambda: audit.note(console.store, viewer.username, "downloaded",
                                               address=client_address(request), organisation=found["organisation"],
                                               message_id=message_id))
    return Response(body, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="postbud-{message_id}.zip"', "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff"})


def routes(console: Console) -> list[Route]:
    readers = (Area.TRACE, Area.MINE)
    return [
        Route("/trace", page(console, readers, search_page), methods=["GET"]),
        Route("/mine", page(console, Area.MINE, search_page), methods=["GET"]),
        Route("/trace/{message_id}", page(console, readers, letter_page), methods=["GET"]),
        Route("/trace/{message_id}/download", page(console, (Area.DOCUMENTS, Area.MINE), download), methods=["GET"]),
        Route("/trace/{message_id}/resend", page(console, Area.RESEND, resend_action), methods=["POST"]),
    ]
