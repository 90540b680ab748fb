"""The recipients' confirmation page on the daemon's HTTP listener (the approval logic is delivery/approval.py)."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from core.storage.db import Store
from delivery.approval import ApprovalError, confirm, pending_invitation
from delivery.recipients import RecipientsFile

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>postbud</title></head>
<body><main><h1>{title}</h1><p>{text}</p>{form}</main></body></html>"""


def _page(title: str, text: str, form: str = "", status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=html.escape(title), text=html.escape(text), form=form),
                        status_code=status, headers={"Cache-Control": "no-store",
                                                     "Referrer-Policy": "no-referrer"})


def confirm_route(store: Store, *, directory: Callable[[], RecipientsFile | None] | None = None,
                  trust_store: Path | None = None) -> Route:
    """GET shows a confirm button, POST confirms: mail scanners that prefetch links confirm nothing.

    With `directory` (a callable returning the current recipients file), a recipient whose key
    already checks out is approved on the spot; otherwise the delivery worker approves it later.
    """

    async def endpoint(request: Request) -> Response:
        token = str(request.path_params["token"])
        if request.method == "GET":
            row = await run_in_threadpool(pending_invitation, store, token)
            if row is None:
                return _page("Link not valid", "This confirmation link is unknown, used or expired.",
                             status=404)
            form = '<form method="post"><button type="submit">Confirm</button></form>'
            return _page("Confirm your address",
                         f"Confirm that {row.email or row.recipient} receives official mail for "
                         f"organisation {row.organisation_cvr}.", form)
        try:
            await run_in_threadpool(lambda: confirm(store, token, trust_store=trust_store,
                                                    directory=directory() if directory else None))
        except ApprovalError as exc:
            return _page("Not confirmed", str(exc), status=404)
        return _page("Confirmed", "Thank you. Your address is confirmed; you can close this page.")

    return Route("/recipients/confirm/{token}", endpoint, methods=["GET", "POST"])
