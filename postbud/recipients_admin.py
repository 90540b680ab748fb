"""Recipients and groups added, changed and removed by an administrator (CLI or console) instead of by
editing TOML: each change goes through `delivery.recipients_edit` into the recipients file, which stays
the source of truth, and the running daemon takes it up as it takes up a hand edit.

A change is refused, with the reason, when the daemon would refuse the file it leaves: one that does
not load, that the rules no longer check against, or that drops a recipient or group an
organisation's `default_route` names. Removing a recipient is refused while they are in a group (remove
them from it first) and while letters wait in the outbox for them, unless the administrator asks to
hold those letters: then they go back to the manual queue for a person to place again (each traced),
and the recipient's approval is revoked, so an id taken up again later starts from an invitation.
Every change is a `recipients_changed` trace event with who made it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from core.config import Config
from core.lifecycle import record
from core.storage.db import Store
from core.storage.models import ApprovalStatus, Delivery, DeliveryStatus, RecipientApproval
from delivery.approval import revoke
from delivery.outbox import hold_recipient
from delivery.recipients import RecipientsFile, load_recipients
from delivery.errors import RecipientsFileError
from delivery.recipients_edit import (
    Fields,
    RecipientsEditError,
    Snapshot,
    drop_group,
    drop_recipient,
    edit,
    put_group,
    put_recipient,
    snapshot,
)
from rules import RuleErrors
from rules import load as load_rules

EVENT = "recipients_changed"


@dataclass(frozen=True)
class Changed:
    """What a change did: in words, the file's new version, and the letters it sent back to the queue."""

    summary: str
    version: str
    held: tuple[str, ...] = ()


class RecipientsAdmin:
    """The administrator's changes to one configuration's recipients file, made as `actor`.

    `expected` (on every change) is the SHA-256 of the version the administrator looked at; a file
    changed since is refused (`RecipientsFileChanged`) instead of overwritten. None: the version read
    under the writers' lock, as the CLI does.
    """

    def __init__(self, config: Config, store: Store, *, actor: str) -> None:
        if config.recipients.file is None:
            raise RecipientsEditError("no recipients file: set [recipients] file in the configuration")
        self.path: Path = config.recipients.file
        self.config, self.store, self.actor = config, store, actor

    def current(self) -> Snapshot:
        return snapshot(self.path)

    def directory(self) -> RecipientsFile | None:
        """The file as it is now (None when it does not exist yet)."""
        if not self.path.exists():
            return None
        try:
            return load_recipients(self.path)
        except RecipientsFileError as exc:
            raise RecipientsEditError(f"{exc}; fix the file by hand first") from None

    def add(self, org: str, rid: str, fields: Fields, *, expected: str | None = None) -> Changed:
        self._known_organisation(org)
        written = edit(self.path, lambda doc: put_recipient(doc, org, rid, fields, create=True, base=self.path.parent),
                       expected=expected, check=self._still_consistent)
        return self._changed(org, "recipient_added", f"recipient {rid} of {org} added", written, recipient=rid)

    def change(self, org: str, rid: str, fields: Fields, *, expected: str | None = None) -> Changed:
        written = edit(self.path, lambda doc: put_recipient(doc, org, rid, fields, create=False,
                                                            base=self.path.parent),
                       expected=expected, check=self._still_consistent)
        keys = sorted(k for k, v in vars(fields).items() if v is not None and k != "unset")
        return self._changed(org, "recipient_changed", f"recipient {rid} of {org} changed", written, recipient=rid,
                             keys=keys, cleared=sorted(fields.unset))

    def remove(self, org: str, rid: str, *, hold_waiting: bool = False, expected: str | None = None) -> Changed:
        directory = self.directory()
        groups = sorted(g for g, members in (directory.groups(org) if directory else {}).items() if rid in members)
        if groups:
            raise RecipientsEditError(f"{rid} is a member of group{'s' if len(groups) > 1 else ''} "
                                      f"{', '.join(groups)} of {org}: remove them from it first "
                                      f"(`postbud recipients group remove {org} {groups[0]} {rid}`)")
        waiting = self.waiting(org, rid)
        if waiting and not hold_waiting:
            raise RecipientsEditError(
                f"{waiting} letter{'s are' if waiting > 1 else ' is'} waiting in the outbox for {rid}: nothing was "
                "removed; hold them for a person to place again (--hold-waiting, or the console's check box), "
                "or remove the recipient once they are delivered")
        written = edit(self.path, lambda doc: drop_recipient(doc, org, rid), expected=expected,
                       check=self._still_consistent)
        held = self._retire(org, rid)
        return self._changed(org, "recipient_removed", f"recipient {rid} of {org} removed"
                             + (f"; {len(held)} waiting letters held for a person to place again" if held else ""),
                             written, recipient=rid, held=held)

    def set_group(self, org: str, gid: str, members: Sequence[str], *, expected: str | None = None) -> Changed:
        written = edit(self.path, lambda doc: put_group(doc, org, gid, members), expected=expected,
                       check=self._still_consistent)
        return self._changed(org, "group_set", f"group {gid} of {org}: {', '.join(members)}", written, group=gid,
                             members=list(members))

    def remove_group(self, org: str, gid: str, *, expected: str | None = None) -> Changed:
        written = edit(self.path, lambda doc: drop_group(doc, org, gid), expected=expected,
                       check=self._still_consistent)
        return self._changed(org, "group_removed", f"group {gid} of {org} removed", written, group=gid)

    def waiting(self, org: str, rid: str) -> int:
        """Outbox rows still to be sent to the recipient."""
        with self.store.read() as session:
            return int(session.exec(select(func.count()).select_from(Delivery).where(
                Delivery.organisation_cvr == org, Delivery.recipient == rid,
                col(Delivery.status).in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING]))).one())

    # -- inside ---------------------------------------------------------------------------------

    def _known_organisation(self, org: str) -> None:
        if org not in {o.cvr for o in self.config.organisations}:
            raise RecipientsEditError(f"organisation {org} is not in the configuration")

    def _still_consistent(self, directory: RecipientsFile) -> None:
        """What the daemon checks when it takes up a changed file, and the organisations' fallbacks."""
        for org in self.config.organisations:
            gone = [r for r in org.default_route if r not in directory.ids(org.cvr)]
            if gone:
                raise RecipientsEditError(f"organisation {org.cvr}'s default_route names {', '.join(gone)}: change "
                                          "default_route in the configuration first; nothing was written")
        if self.config.rules.directory is None:
            return
        try:
            load_rules(self.config.rules.directory, directory)
        except RuleErrors as exc:
            problems = "; ".join(str(i) for i in exc.issues[:3])
            raise RecipientsEditError(f"the rules would no longer check against the file: {problems}; change the "
                                      "rules first; nothing was written") from None

    def _retire(self, org: str, rid: str) -> tuple[str, ...]:
        """A removed recipient's waiting letters back to the queue, and their approval revoked."""
        with self.store.transaction() as session:
            held = hold_recipient(session, org, rid, actor=self.actor,
                                  reason=f"recipient {rid} was removed from the recipients file")
            approval = session.exec(select(RecipientApproval).where(
                RecipientApproval.organisation_cvr == org, RecipientApproval.recipient == rid)).first()
        if approval is not None and approval.status != ApprovalStatus.REVOKED:
            revoke(self.store, org, rid, actor=self.actor)
        return tuple(held)

    def _changed(self, org: str, action: str, summary: str, written: Snapshot, *, held: Sequence[str] = (),
                 **detail: Any) -> Changed:
        with self.store.transaction() as session:
            record(session, None, EVENT, actor=self.actor, reason=summary,
                   detail={"organisation": org, "action": action, "file": str(self.path), **detail,
                           **({"held": list(held)} if held else {})})
        return Changed(summary, written.digest, tuple(held))
