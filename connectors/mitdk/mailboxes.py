"""Which mit.dk mailbox is the company's: chosen from what `GET mailboxes` really offers (§2.3).

The listing gives `id`, `dataSource` and `ownerName` for each mailbox (Net-MitDK, helmstedt); a real
answer may carry more (a type, an owner id), which is used when present but never required.
"""

from __future__ import annotations

import re
from typing import Any

# Fields that may say what kind of owner a mailbox has; none is documented, any that is present counts.
_TYPE_FIELDS = ("type", "mailboxType", "ownerType", "ownerIdType", "recipientIdType", "identityType")
_OWNER_ID_FIELDS = ("ownerId", "ownerCvr", "cvr", "cvrNumber", "recipientId")
_COMPANY = re.compile(r"COMPANY|CVR|ORGANI[SZ]ATION|VIRKSOMHED|BUSINESS|ERHVERV", re.IGNORECASE)
_PERSON = re.compile(r"PERSON|CPR|CITIZEN|BORGER|PRIVATE", re.IGNORECASE)
_LEGAL_FORM = re.compile(r"\b(a/s|aps|i/s|k/s|p/s|ivs|amba|a\.m\.b\.a\.)\b\.?", re.IGNORECASE)


def seen_mailboxes(body: Any) -> list[dict[str, Any]]:
    """Every mailbox object in `{groupedMailboxes:[{mailboxes:[…]}]}`."""
    from connectors.base import TransientError

    groups = body.get("groupedMailboxes") if isinstance(body, dict) else None
    if not isinstance(groups, list):
        raise TransientError("mit.dk list mailboxes: the answer has no groupedMailboxes")
    return [m for g in groups if isinstance(g, dict) for m in g.get("mailboxes") or [] if isinstance(m, dict)]


def summary(box: dict[str, Any]) -> dict[str, str]:
    """What an operator needs to pick a mailbox: its id, data source, owner and any type field."""
    out = {"id": str(box.get("id", "")), "dataSource": str(box.get("dataSource", "")),
           "ownerName": str(box.get("ownerName", ""))}
    for name in (*_TYPE_FIELDS, *_OWNER_ID_FIELDS):
        if box.get(name) not in (None, ""):
            out[name] = str(box[name])
    return out


def describe(boxes: list[dict[str, Any]]) -> str:
    if not boxes:
        return "none"
    return "; ".join(", ".join(f"{k}={v}" for k, v in summary(b).items()) for b in boxes)


def _kind(box: dict[str, Any]) -> str | None:
    for name in _TYPE_FIELDS:
        value = str(box.get(name) or "")
        if _COMPANY.search(value):
            return "company"
        if _PERSON.search(value):
            return "person"
    return None


def _plain(name: str) -> str:
    return " ".join(_LEGAL_FORM.sub(" ", name).casefold().split())


def choose_mailbox(boxes: list[dict[str, Any]], *, mailbox_id: str | None, owner_name: str | None, cvr: str,
                   organisation_name: str) -> tuple[list[dict[str, Any]], str]:
    """The candidates for the company's mailbox, and how they were matched (for the error)."""
    if mailbox_id is not None:
        return [m for m in boxes if str(m.get("id")) == mailbox_id], f"mailbox_id {mailbox_id!r}"
    if owner_name is not None:
        return ([m for m in boxes if _plain(str(m.get("ownerName", ""))) == _plain(owner_name)],
                f"owner_name {owner_name!r}")
    by_id = [m for m in boxes if any(str(m.get(f, "")) == cvr for f in _OWNER_ID_FIELDS)]
    if by_id:
        return by_id, "the CVR"
    companies = [m for m in boxes if _kind(m) == "company"]
    if len(companies) == 1:
        return companies, "type company"
    pool = companies or [m for m in boxes if _kind(m) != "person"]
    if organisation_name:
        named = [m for m in pool if _plain(str(m.get("ownerName", ""))) == _plain(organisation_name)]
        if named:
            return named, f"the organisation's name {organisation_name!r}"
    if len(pool) == 1:
        return pool, "the only mailbox that is not a person's"
    return pool if len(pool) > 1 else [], f"the organisation's name {organisation_name!r}"
