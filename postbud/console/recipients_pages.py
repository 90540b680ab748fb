"""The administrators' recipients page: their organisations' recipients and groups as the recipients file
holds them, with forms that add, change and remove them through `postbud.recipients_admin` (the same
checks as the CLI), each change in the audit trail.

Every form carries the file's version as the page showed it: a file changed since (by a colleague, by
hand) refuses the change with 409 instead of overwriting what the administrator never saw. Keys are not
edited here (a recipient provides theirs through the invitation); the page shows which they have.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from core.storage.models import RecipientApproval
from delivery.onboarding import Step, journeys
from delivery.recipients import Channel, PostalAddress, Recipient
from delivery.recipients_edit import Fields, RecipientsEditError, RecipientsFileChanged
from postbud.console import audit
from postbud.console.profiles import Area
from postbud.console.sessions import Viewer
from postbud.console.web import PREFIX, Console, client_address, form, page, render
from postbud.recipients_admin import Changed, RecipientsAdmin

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_POSTAL = ("name", "street", "postcode", "city", "country")
# what a redirect after a change may announce (and nothing else from the query string)
_ACTIONS = ("recipient_added", "recipient_changed", "recipient_removed", "group_set", "group_removed")


@dataclass(frozen=True)
class Row:
    """One recipient as the page lists it."""

    id: str
    name: str
    aliases: str
    email: str
    channel: str
    key: str
    postal: str
    notify: str
    route_alone: bool
    approval: str
    entry: Recipient
    step: str = Step.NOT_INVITED  # the onboarding checklist's step (delivery/onboarding.py)
    step_since: datetime | None = None


def _admin(console: Console, viewer: Viewer) -> RecipientsAdmin:
    return RecipientsAdmin(console.config(), console.store, actor=f"console:{viewer.username}")


def _organisation(viewer: Viewer, wanted: str) -> str | None:
    if wanted in viewer.organisations:
        return wanted
    return viewer.organisations[0] if viewer.organisations and not wanted else None


def _rows(admin: RecipientsAdmin, org: str) -> tuple[list[Row], dict[str, tuple[str, ...]], str]:
    version = admin.current().digest
    directory = admin.directory()
    if directory is None or org not in directory.organisations():
        return [], {}, version
    with admin.store.read() as session:
        approvals = {r.recipient: r.status for r in session.exec(select(RecipientApproval).where(
            RecipientApproval.organisation_cvr == org).order_by(col(RecipientApproval.recipient)))}
    steps = journeys(admin.store, directory)
    rows = []
    for rid in sorted(directory.names(org)):
        r = directory.get(org, rid)
        address = r.postal_address
        journey = steps.get((org, rid))
        uploaded = f"{journey.key_kind}: {journey.key_source}" if journey and journey.key_kind else ""
        rows.append(Row(rid, r.name, ", ".join(r.aliases), r.email or "", r.channel.value if r.channel else "",
                        f"{r.key_kind.value}: {r.key_path.name}" if r.key_kind and r.key_path else uploaded,
                        ", ".join(v for v in (address.name, address.street, f"{address.postcode} {address.city}",
                                              address.country) if v) if address else "",
                        r.notify, r.route_alone, approvals.get(rid, "not invited"), r,
                        journey.step if journey else Step.NOT_INVITED, journey.since if journey else None))
    return rows, directory.groups(org), version


async def recipients_page(request: Request, console: Console, viewer: Viewer, *, flash: str = "",
                          bad: bool = False, status: int = 200, org: str | None = None,
                          posted: dict[str, str] | None = None) -> Response:
    chosen = org or _organisation(viewer, request.query_params.get("org", ""))
    if chosen is None:
        return render(request, "message.html", viewer=viewer, status=404, heading="not_found", text="")
    try:
        admin = _admin(console, viewer)
        rows, groups, version = await run_in_threadpool(_rows, admin, chosen)
    except RecipientsEditError as exc:  # no recipients file configured, or one that does not load
        return render(request, "message.html", viewer=viewer, status=status, heading="recipients",
                      text=_shown(exc, console))
    editing = request.query_params.get("edit", "")
    entry = next((r.entry for r in rows if r.id == editing), None)
    values = posted or (_values(entry) if entry is not None else {"route_alone": "on"})
    done = request.query_params.get("done", "")
    done_id = request.query_params.get("id", "")
    if flash or done not in _ACTIONS or not _ID.match(done_id):
        done = done_id = ""
    return render(request, "recipients.html", viewer=viewer, active="recipients", org=chosen, rows=rows,
                  groups=groups, version=version, editing=entry.id if entry else "", values=values, flash=flash,
                  bad=bad, done=done, done_id=done_id, channels=[c.value for c in Channel], status=status)


def _values(entry: Recipient) -> dict[str, str]:
    """A recipient's settings as the form's fields."""
    address = entry.postal_address.model_dump() if entry.postal_address else {}
    return {"id": entry.id, "name": entry.name, "aliases": ", ".join(entry.aliases), "email": entry.email or "",
            "channel": entry.channel.value if entry.channel else "", "notify": entry.notify,
            "notification_address": entry.notification_address or "",
            "route_alone": "on" if entry.route_alone else "",
            **{f"postal_{k}": str(address.get(k) or "") for k in _POSTAL}}


def _fields(posted: dict[str, str], *, new: bool) -> Fields:
    """The form as a change: an emptied field is removed from the file (a new recipient just lacks it)."""
    text = {k: v.strip() for k, v in posted.items()}
    unset: set[str] = set()
    for key in ("aliases", "email", "channel", "notification_address"):
        if not text.get(key):
            unset.add(key)
    postal = {k: text.get(f"postal_{k}", "") for k in _POSTAL}
    address = None
    if any(postal[k] for k in _POSTAL if k != "country"):
        try:
            address = PostalAddress.model_validate({k: v for k, v in postal.items() if v})
        except ValidationError as exc:
            problem = exc.errors()[0]
            raise RecipientsEditError(f"postal address: {'.'.join(str(p) for p in problem['loc'])}: "
                                      f"{problem['msg']}") from None
    else:
        unset.add("postal_address")
    notice = text.get("notify") == "notice"
    if not notice:
        unset.add("notify")  # a letter is the default
    alone = bool(text.get("route_alone"))
    if alone:
        unset.add("route_alone")  # true is the default
    aliases = tuple(a.strip() for a in text.get("aliases", "").split(",") if a.strip())
    return Fields(name=text.get("name") or None, aliases=aliases or None, email=text.get("email") or None,
                  channel=text.get("channel") or None, postal_address=address,
                  notify="notice" if notice else None,
                  notification_address=text.get("notification_address") or None,
                  route_alone=None if alone else False, unset=frozenset() if new else frozenset(unset))


async def save_recipient(request: Request, console: Console, viewer: Viewer) -> Response:
    posted = await form(request)
    org, rid, new = posted.get("org", ""), posted.get("id", "").strip(), posted.get("mode") == "add"

    def change(admin: RecipientsAdmin) -> Changed:
        fields = _fields(posted, new=new)
        if new:
            return admin.add(org, rid, fields, expected=posted.get("version"))
        return admin.change(org, rid, fields, expected=posted.get("version"))

    return await _apply(request, console, viewer, org, "recipient_added" if new else "recipient_changed",
                        change, {"recipient": rid}, posted)


async def remove_recipient(request: Request, console: Console, viewer: Viewer) -> Response:
    posted = await form(request)
    org, rid = posted.get("org", ""), posted.get("id", "")
    hold = bool(posted.get("hold_waiting"))
    return await _apply(request, console, viewer, org, "recipient_removed",
                        lambda admin: admin.remove(org, rid, hold_waiting=hold, expected=posted.get("version")),
                        {"recipient": rid})


async def save_group(request: Request, console: Console, viewer: Viewer) -> Response:
    posted = await form(request)
    org, gid = posted.get("org", ""), posted.get("group", "").strip()
    members = [k.removeprefix("member.") for k, v in posted.items() if k.startswith("member.") and v]
    return await _apply(request, console, viewer, org, "group_set",
                        lambda admin: admin.set_group(org, gid, members, expected=posted.get("version")),
                        {"group": gid, "members": members})


async def remove_group(request: Request, console: Console, viewer: Viewer) -> Response:
    posted = await form(request)
    org, gid = posted.get("org", ""), posted.get("group", "")
    return await _apply(request, console, viewer, org, "group_removed",
                        lambda admin: admin.remove_group(org, gid, expected=posted.get("version")), {"group": gid})


async def _apply(request: Request, console: Console, viewer: Viewer, org: str, action: str,
                 change: Any, detail: dict[str, Any], posted: dict[str, str] | None = None) -> Response:
    """Make the change as the viewer (their own organisations only), audit it, and show the outcome."""
    if not org:  # an incomplete form
        return await recipients_page(request, console, viewer, flash="organisation?", bad=True, status=400)
    if org not in viewer.organisations:  # another organisation's: as if it did not exist
        return render(request, "message.html", viewer=viewer, status=404, heading="not_found", text="")
    try:
        changed: Changed = await run_in_threadpool(change, _admin(console, viewer))
    except RecipientsFileChanged as exc:
        return await recipients_page(request, console, viewer, flash=_shown(exc, console), bad=True, status=409,
                                     org=org, posted=posted)
    except RecipientsEditError as exc:
        return await recipients_page(request, console, viewer, flash=_shown(exc, console), bad=True, status=400,
                                     org=org, posted=posted)
    await run_in_threadpool(lambda: audit.note(console.store, viewer.username, action, address=client_address(request),
                                               organisation=org,
                                               detail={**detail, **({"held": len(changed.held)} if changed.held else {})}))
    shown = detail.get("recipient") or detail.get("group") or ""
    return RedirectResponse(f"{PREFIX}/recipients?org={org}&done={action}&id={shown}", status_code=303)


def _shown(exc: Exception, console: Console) -> str:
    """The refusal without the server's file path (the administrator knows it as the recipients file)."""
    path = console.config().recipients.file
    return str(exc).replace(str(path), "the recipients file") if path is not None else str(exc)


def routes(console: Console) -> list[Route]:
    return [
        Route("/recipients", page(console, Area.RECIPIENTS, recipients_page), methods=["GET"]),
        Route("/recipients/save", page(console, Area.RECIPIENTS, save_recipient), methods=["POST"]),
        Route("/recipients/remove", page(console, Area.RECIPIENTS, remove_recipient), methods=["POST"]),
        Route("/recipients/group", page(console, Area.RECIPIENTS, save_group), methods=["POST"]),
        Route("/recipients/group/remove", page(console, Area.RECIPIENTS, remove_group), methods=["POST"]),
    ]
