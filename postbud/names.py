"""What an operator types, checked against what exists: organisations, recipients and groups, mailboxes,
providers, statuses, channels and e-mail addresses. A miss raises UnknownName naming the candidates,
so a typo never quietly matches nothing or creates a record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rapidfuzz import fuzz, process, utils
from sqlmodel import select

from core.config import Config
from core.storage.db import Store
from core.storage.models import ApprovalStatus, MessageStatus, RecipientApproval
from delivery.recipients import RecipientsFile
from router.queue import resolve_recipient

EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;.]+$")


class UnknownName(ValueError):
    """A typed name that names nothing (or more than one thing); the message says what is known."""

    def __init__(self, message: str, candidates: Iterable[str] = (), *, usage: bool = False) -> None:
        self.candidates = tuple(dict.fromkeys(candidates))
        self.usage = usage  # a value of the wrong form (a status, a channel), not a missing thing
        if self.candidates:
            message += f"; did you mean {', '.join(self.candidates)}?"
        super().__init__(message)


def similar(typed: str, choices: Iterable[str], *, limit: int = 5) -> list[str]:
    """The choices that look like `typed`, best first (all of them when there are only a few)."""
    options = sorted(set(choices))
    found = [c for c, score, _ in process.extract(typed, options, scorer=fuzz.WRatio,
                                                   processor=utils.default_process, limit=limit) if score >= 60]
    return found or (options if len(options) <= limit else [])


def organisation(config: Config, typed: str) -> str:
    """A configured organisation by CVR or by name (case-insensitive); its CVR."""
    for org in config.organisations:
        if typed.strip() in (org.cvr, org.name) or typed.strip().casefold() == org.name.casefold():
            return org.cvr
    known = [f"{o.cvr} ({o.name})" for o in config.organisations]
    best = similar(typed, [o.cvr for o in config.organisations] + [o.name for o in config.organisations])
    names = {o.name: f"{o.cvr} ({o.name})" for o in config.organisations}
    cvrs = {o.cvr: f"{o.cvr} ({o.name})" for o in config.organisations}
    candidates = list(dict.fromkeys(names.get(b) or cvrs[b] for b in best)) or known
    raise UnknownName(f"organisation {typed} is not in the configuration", candidates)


def status(typed: str) -> str:
    values = [s.value for s in MessageStatus]
    if typed.strip().lower() in values:
        return typed.strip().lower()
    raise UnknownName(f"{typed!r} is no message status; use one of {', '.join(values)}", usage=True)


def channel(config: Config, typed: str) -> str:
    enabled = list(config.delivery.channels)
    if typed.strip().lower() in enabled:
        return typed.strip().lower()
    raise UnknownName(f"{typed!r} is no enabled delivery channel; use one of {', '.join(enabled)}", usage=True)


def mailbox(config: Config, typed: str, *, organisation: str | None = None) -> str:
    names = {m.name for o in config.organisations for m in o.mailboxes if organisation in (None, o.cvr)}
    if typed in names:
        return typed
    raise UnknownName(f"no mailbox named {typed!r}" + (f" in {organisation}" if organisation else ""),
                      similar(typed, names))


def provider(config: Config, typed: str) -> str:
    from connectors.registry import discover

    known = {m.type for o in config.organisations for m in o.mailboxes} | set(discover())
    if typed in known:
        return typed
    raise UnknownName(f"{typed!r} is no provider (connector type)", similar(typed, known))


def email_address(typed: str) -> str:
    if not EMAIL.match(typed.strip()):
        raise UnknownName(f"{typed!r} is not an e-mail address; give one like name@example.dk", usage=True)
    return typed.strip()


def recipient(directory: RecipientsFile | None, org: str, typed: str, *, groups: bool = False) -> str:
    """A recipient of `org` in the recipients file, by id, name or alias (fuzzy, never a guess between
    two); with `groups`, a group id too."""
    if directory is None:
        raise UnknownName("no recipients file is configured ([recipients] file), so no recipient is known")
    if org not in directory.organisations():
        raise UnknownName(f"organisation {org} has no recipients in {_source(directory)}")
    if groups and typed in directory.groups(org):
        return typed
    found = resolve_recipient(typed, directory.names(org))
    if found.recipient is not None:
        return found.recipient
    choices = [f"{rid} ({label})" if label != rid else rid for rid, label, _ in found.candidates]
    if groups:
        choices += similar(typed, directory.groups(org), limit=2)
    what = "recipient or group" if groups else "recipient"
    raise UnknownName(f"{typed!r} names no one {what} of {org} in {_source(directory)}",
                      choices or sorted(directory.ids(org))[:8])


def approval(store: Store, org: str, rid: str) -> str | None:
    """The recipient's approval status (invited, confirmed, approved, revoked), None if never invited."""
    with store.read() as session:
        row = session.exec(select(RecipientApproval).where(RecipientApproval.organisation_cvr == org,
                                                           RecipientApproval.recipient == rid)).first()
    return row.status if row is not None else None


def invited(store: Store, org: str) -> list[str]:
    """Recipients of `org` with an approval record (invited, confirmed, approved or revoked)."""
    with store.read() as session:
        return sorted(r.recipient for r in session.exec(select(RecipientApproval)
                                                        .where(RecipientApproval.organisation_cvr == org)))


def approved_recipient(store: Store, directory: RecipientsFile | None, org: str, typed: str) -> str:
    """As `recipient`, and approved now: what delivery will accept."""
    rid = recipient(directory, org, typed)
    state = approval(store, org, rid)
    if state != ApprovalStatus.APPROVED:
        raise UnknownName(f"{rid} of {org} is not approved ({state or 'never invited'}): nothing would be "
                          f"sent to them; run `postbud recipients approve {org} {rid}` first, or choose another")
    return rid


def approved_target(store: Store, directory: RecipientsFile | None, org: str, typed: str) -> str:
    """A recipient or a group of `org` whose every member is approved now."""
    target = recipient(directory, org, typed, groups=True)
    assert directory is not None
    members = directory.groups(org).get(target, (target,))
    waiting = [f"{m} ({approval(store, org, m) or 'never invited'})" for m in members
               if approval(store, org, m) != ApprovalStatus.APPROVED]
    if waiting:
        what = f"group {target} has members who are not approved: {', '.join(waiting)}" \
            if target in directory.groups(org) else f"{target} of {org} is not approved {waiting[0].split(' ', 1)[1]}"
        first = waiting[0].split(" ", 1)[0]
        raise UnknownName(f"{what}; nothing would be sent to them: approve first (`postbud recipients approve "
                          f"{org} {first}`), or choose another")
    return target


def _source(directory: RecipientsFile) -> str:
    return str(directory.source) if directory.source is not None else "the recipients file"
