"""The recipients' confirmation page on the daemon's HTTP listener, in Danish and in the console's look,
naming the organisation (the approval logic is delivery/approval.py)."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from sqlmodel import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from core.storage.db import Store
from core.storage.models import Organisation
from delivery.approval import ApprovalError, confirm, pending_invitation
from delivery.recipients import RecipientsFile

# The console's colours and type, inline: the page must look right whether or not the console is enabled.
_PAGE = """<!doctype html><html lang="da"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title} · postbud</title>
<style>body{{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d2733;background:#f6f8fa}}
header{{background:#fff;border-bottom:1px solid #d8dee6;padding:.5rem 1rem;font-weight:700;color:#0b5cad}}
main{{max-width:34rem;margin:2rem auto;padding:1rem;background:#fff;border:1px solid #d8dee6;border-radius:6px}}
h1{{font-size:1.4rem;margin:.3rem 0 1rem}}button{{background:#0b5cad;color:#fff;border:0;border-radius:4px;
padding:.6rem 1rem;font-size:1rem;cursor:pointer}}</style></head>
<body><header>postbud</header><main><h1>{title}</h1><p>{text}</p>{form}</main></body></html>"""


def _page(title: str, text: str, form: str = "", status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=html.escape(title), text=html.escape(text), form=form),
                        status_code=status, headers={"Cache-Control": "no-store",
                                                     "Referrer-Policy": "no-referrer"})


def _organisation_name(store: Store, cvr: str) -> str:
    with store.read() as session:
        row = session.exec(select(Organisation).where(Organisation.cvr == cvr)).first()
    return f"{row.name} (CVR {cvr})" if row and row.name else f"CVR {cvr}"


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
                return _page("Linket virker ikke", "Dette bekræftelseslink er ukendt, brugt eller udløbet.",
                             status=404)
            name = await run_in_threadpool(_organisation_name, store, row.organisation_cvr)
            form = '<form method="post"><button type="submit">Bekræft</button></form>'
            return _page("Bekræft din adresse",
                         f"Bekræft, at {row.email or row.recipient} skal modtage digital post for {name}.", form)
        try:
            await run_in_threadpool(lambda: confirm(store, token, trust_store=trust_store,
                                                    directory=directory() if directory else None))
        except ApprovalError as exc:
            return _page("Ikke bekræftet", str(exc), status=404)
        return _page("Bekræftet", "Tak. Din adresse er bekræftet; du kan lukke siden.")

    return Route("/recipients/confirm/{token}", endpoint, methods=["GET", "POST"])
