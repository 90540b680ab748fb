"""The onboarding checklist per recipient, each step closing itself and recorded in the trace:

    invited ──confirm──> address_confirmed ──key──> key_provided ──test letter──> test_letter_sent
                                                                                        │ code typed
                                                                                        ▼
                                                                                     approved

The invitation link (delivery/approval.py) opens every step until approval closes it. A key the
recipient gives on the page (uploaded, or issued from the organisation's CA) is kept in the database
(RecipientOnboarding); the recipients file stays the source of truth for *who*, and a key the file
names wins over an uploaded one. Such a key is approved only once the recipient types the code of a
test letter encrypted to it: proof they can read what postbud will send. A recipient whose key is in
the file was vouched for by the administrator and is approved at confirmation, as before.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sqlmodel import Session, col, select

from core.lifecycle import record
from core.storage.db import Store
from core.storage.models import ApprovalStatus, RecipientApproval
from core.storage.onboarding import RecipientOnboarding
from delivery.approval import approve_row, new_code, token_hash
from delivery.key_offer import OfferedKey
from delivery.keys import check_recipient_key
from delivery.recipients import KeyKind, Recipient, RecipientsFile, UnknownRecipient

A = ApprovalStatus
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


class Step(StrEnum):
    NOT_INVITED = "not_invited"
    INVITED = "invited"
    ADDRESS_CONFIRMED = "address_confirmed"
    KEY_PROVIDED = "key_provided"
    TEST_LETTER_SENT = "test_letter_sent"
    APPROVED = "approved"
    REVOKED = "revoked"


STUCK = (Step.INVITED, Step.ADDRESS_CONFIRMED, Step.KEY_PROVIDED, Step.TEST_LETTER_SENT)


class OnboardingError(Exception):
    """A step cannot be taken; the message (Danish, for the confirmation page) says why."""


@dataclass(frozen=True)
class Journey:
    """Where one recipient stands on the checklist."""

    organisation: str
    recipient: str
    email: str | None
    step: Step
    since: dt.datetime | None
    key_kind: str | None = None
    key_source: str | None = None


def step_of(approval: RecipientApproval | None, onboarding: RecipientOnboarding | None, *,
            file_key: bool) -> tuple[Step, dt.datetime | None]:
    """The step a recipient is on and since when."""
    if approval is None:
        return Step.NOT_INVITED, None
    if approval.status == A.APPROVED:
        return Step.APPROVED, approval.approved_at
    if approval.status == A.REVOKED:
        return Step.REVOKED, approval.revoked_at
    if approval.status == A.INVITED:
        return Step.INVITED, approval.invited_at
    if onboarding is not None and onboarding.key_data is not None and not file_key:
        if onboarding.test_sent_at is not None:
            return Step.TEST_LETTER_SENT, onboarding.test_sent_at
        return Step.KEY_PROVIDED, onboarding.key_provided_at
    if file_key:
        return Step.KEY_PROVIDED, approval.confirmed_at  # the delivery worker approves it
    return Step.ADDRESS_CONFIRMED, approval.confirmed_at


def journeys(store: Store, directory: RecipientsFile | None) -> dict[tuple[str, str], Journey]:
    """Every invited recipient's step, by (organisation, recipient id)."""
    with store.read() as session:
        approvals = list(session.exec(select(RecipientApproval)))
        keys = {(o.organisation_cvr, o.recipient): o for o in session.exec(select(RecipientOnboarding))}
    out: dict[tuple[str, str], Journey] = {}
    for row in approvals:
        pair = (row.organisation_cvr, row.recipient)
        onboarding = keys.get(pair)
        step, since = step_of(row, onboarding, file_key=_file_key(directory, *pair))
        out[pair] = Journey(*pair, row.email, step, since,
                            onboarding.key_kind if onboarding and onboarding.key_data else None,
                            onboarding.key_source if onboarding and onboarding.key_data else None)
    return out


def _file_key(directory: RecipientsFile | None, org: str, rid: str) -> bool:
    try:
        return directory is not None and directory.get(org, rid).key_path is not None
    except UnknownRecipient:
        return False


def listed(directory: RecipientsFile | None, org: str, rid: str) -> Recipient | None:
    if directory is None:
        return None
    try:
        return directory.get(org, rid)
    except UnknownRecipient:
        return None


def uploaded_key(session: Session, org: str, recipient: Recipient) -> tuple[Recipient, bytes | None]:
    """The recipient as delivery sees it: with the key they gave on the page when the file names
    none (a copy marked `uploaded_key`, and the key's bytes); else as the file says."""
    if recipient.key_path is not None:
        return recipient, None
    row = _onboarding(session, org, recipient.id)
    if row is None or row.key_data is None or row.key_kind is None:
        return recipient, None
    return recipient.model_copy(update={"uploaded_key": KeyKind(row.key_kind)}), row.key_data


def _onboarding(session: Session, org: str, rid: str) -> RecipientOnboarding | None:
    return session.exec(select(RecipientOnboarding).where(RecipientOnboarding.organisation_cvr == org,
                                                          RecipientOnboarding.recipient == rid)).first()


def _by_token(session: Session, token: str, now: dt.datetime, *, lock: bool) -> RecipientApproval | None:
    query = select(RecipientApproval).where(RecipientApproval.token_hash == token_hash(token))
    row = session.exec(query.with_for_update() if lock else query).first()
    if row is None or row.status not in (A.INVITED, A.CONFIRMED):
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    return row


def open_journey(store: Store, token: str, directory: RecipientsFile | None, *,
                 now: dt.datetime) -> Journey | None:
    """The journey a link opens while the checklist is under way (not after approval or expiry)."""
    with store.read() as session:
        row = _by_token(session, token, now, lock=False)
        if row is None:
            return None
        onboarding = _onboarding(session, row.organisation_cvr, row.recipient)
    step, since = step_of(row, onboarding, file_key=_file_key(directory, row.organisation_cvr, row.recipient))
    has_key = onboarding is not None and onboarding.key_data is not None
    return Journey(row.organisation_cvr, row.recipient, row.email, step, since,
                   onboarding.key_kind if has_key and onboarding else None,
                   onboarding.key_source if has_key and onboarding else None)


def provide_key(store: Store, token: str, offered: OfferedKey, *, source: str, now: dt.datetime,
                actor: str = "recipient") -> Journey:
    """Keep the key the recipient gave (after key_offer's checks); any earlier test code is void."""
    with store.transaction() as session:
        row = _by_token(session, token, now, lock=True)
        if row is None:
            raise OnboardingError("Linket er ukendt, brugt eller udløbet.")
        if row.status != A.CONFIRMED:
            raise OnboardingError("Bekræft først din adresse.")
        org, rid = row.organisation_cvr, row.recipient
        onboarding = _onboarding(session, org, rid) or RecipientOnboarding(organisation_cvr=org, recipient=rid)
        onboarding.key_kind, onboarding.key_source, onboarding.key_data = offered.kind.value, source, offered.data
        onboarding.key_fingerprint, onboarding.key_expires_at = offered.fingerprint, offered.expires_at
        onboarding.key_provided_at, onboarding.updated_at = now, now
        onboarding.test_code_hash = onboarding.test_sent_at = onboarding.test_confirmed_at = None
        session.add(onboarding)
        record(session, None, "recipient_key_provided", actor=actor,
               detail={"organisation": org, "recipient": rid, "kind": offered.kind.value, "source": source,
                       "fingerprint": offered.fingerprint[:16],
                       "expires_at": offered.expires_at.isoformat() if offered.expires_at else None})
    return Journey(org, rid, row.email, Step.KEY_PROVIDED, now, offered.kind.value, source)


def new_test_code() -> str:
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def _code_hash(code: str) -> str:
    canonical = "".join(ch for ch in code.upper() if ch.isalnum())
    return hashlib.sha256(canonical.encode("ascii", "ignore")).hexdigest()


@dataclass(frozen=True)
class TestLetter:
    """What a test letter is encrypted to and what it carries (the code exists only here and in it)."""

    organisation: str
    recipient: str
    email: str
    kind: KeyKind
    key: bytes
    code: str


def start_test_letter(store: Store, org: str, rid: str) -> TestLetter:
    """A new code for the recipient's key (the previous one stops working); sent by the caller."""
    code = new_test_code()
    with store.transaction() as session:
        onboarding = _onboarding(session, org, rid)
        approval = session.exec(select(RecipientApproval).where(
            RecipientApproval.organisation_cvr == org, RecipientApproval.recipient == rid)).first()
        if onboarding is None or onboarding.key_data is None or onboarding.key_kind is None or \
                approval is None or approval.email is None or approval.status != A.CONFIRMED:
            raise OnboardingError("Der er ingen nøgle at sende et testbrev til.")
        onboarding.test_code_hash = _code_hash(code)
        session.add(onboarding)
        return TestLetter(org, rid, approval.email, KeyKind(onboarding.key_kind), onboarding.key_data, code)


def test_letter_sent(store: Store, letter: TestLetter, *, message_id: str, now: dt.datetime,
                     actor: str = "recipient") -> None:
    with store.transaction() as session:
        onboarding = _onboarding(session, letter.organisation, letter.recipient)
        if onboarding is None or onboarding.test_code_hash != _code_hash(letter.code):
            return  # a newer key or code replaced this one meanwhile
        onboarding.test_sent_at, onboarding.updated_at = now, now
        session.add(onboarding)
        record(session, None, "recipient_test_letter_sent", actor=actor,
               detail={"organisation": letter.organisation, "recipient": letter.recipient,
                       "kind": letter.kind.value, "message_id": message_id, "encrypted": True})


def confirm_test_code(store: Store, token: str, code: str, directory: RecipientsFile | None, *,
                      now: dt.datetime, trust_store: Path | None = None,
                      actor: str = "recipient") -> RecipientApproval:
    """The recipient typed the test letter's code: key_provided → approved (the link closes)."""
    with store.transaction() as session:
        row = _by_token(session, token, now, lock=True)
        if row is None:
            raise OnboardingError("Linket er ukendt, brugt eller udløbet.")
        onboarding = _onboarding(session, row.organisation_cvr, row.recipient)
        if row.status != A.CONFIRMED or onboarding is None or onboarding.test_code_hash is None:
            raise OnboardingError("Der er ikke sendt et testbrev endnu.")
        if not hmac.compare_digest(onboarding.test_code_hash, _code_hash(code)):
            raise OnboardingError("Koden passer ikke. Skriv koden fra det seneste testbrev.")
        recipient = listed(directory, row.organisation_cvr, row.recipient)
        if recipient is None:
            raise OnboardingError("Du er endnu ikke oprettet som modtager; din administrator skal tilføje dig.")
        if recipient.email is None or row.email is None or recipient.email.lower() != row.email.lower():
            raise OnboardingError("Adressen er ændret siden invitationen; bed om en ny invitation.")
        recipient, key = uploaded_key(session, row.organisation_cvr, recipient)
        status = check_recipient_key(recipient, trust_store=trust_store, now=now, key=key)
        if not status.valid:
            raise OnboardingError(f"Nøglen kan ikke længere bruges: {status.reason}.")
        onboarding.test_confirmed_at, onboarding.updated_at = now, now
        session.add(onboarding)
        record(session, None, "recipient_test_confirmed", actor=actor,
               detail={"organisation": row.organisation_cvr, "recipient": row.recipient})
        approve_row(session, row, recipient, status, actor=actor, now=now, key=key)
    return row


def pending_test_letters(store: Store) -> list[tuple[str, str]]:
    """Recipients whose key was given but whose test letter did not go out (the daemon retries)."""
    with store.read() as session:
        rows = session.exec(select(RecipientOnboarding, RecipientApproval).join(
            RecipientApproval, (col(RecipientApproval.organisation_cvr) == col(RecipientOnboarding.organisation_cvr))
            & (col(RecipientApproval.recipient) == col(RecipientOnboarding.recipient)))
            .where(col(RecipientOnboarding.key_data).is_not(None), col(RecipientOnboarding.test_sent_at).is_(None),
                   RecipientApproval.status == A.CONFIRMED)).all()
    return [(o.organisation_cvr, o.recipient) for o, _ in rows]


@dataclass(frozen=True)
class Reminder:
    organisation: str
    recipient: str
    email: str
    step: Step
    link: str
    expires_at: dt.datetime


def due_reminders(store: Store, directory: RecipientsFile | None, *, every: dt.timedelta, valid: dt.timedelta,
                  base_url: str, now: dt.datetime) -> list[Reminder]:
    """Recipients stuck on a step for `every` (and not reminded for as long): each gets a renewed
    link (the old one stops working) and the reminder is traced; the caller mails them."""
    out: list[Reminder] = []
    with store.transaction() as session:
        rows = session.exec(select(RecipientApproval).where(
            col(RecipientApproval.status).in_([A.INVITED, A.CONFIRMED])).with_for_update()).all()
        for row in rows:
            org, rid = row.organisation_cvr, row.recipient
            onboarding = _onboarding(session, org, rid)
            step, since = step_of(row, onboarding, file_key=_file_key(directory, org, rid))
            last = max(filter(None, (since, onboarding.reminded_at if onboarding else None)), default=None)
            if step not in STUCK or row.email is None or last is None or now - last < every:
                continue
            token = new_code()
            row.token_hash, row.expires_at, row.updated_at = token_hash(token), now + valid, now
            onboarding = onboarding or RecipientOnboarding(organisation_cvr=org, recipient=rid)
            onboarding.reminded_at, onboarding.reminders = now, onboarding.reminders + 1
            session.add(row)
            session.add(onboarding)
            record(session, None, "recipient_reminded", actor="postbud",
                   detail={"organisation": org, "recipient": rid, "step": step.value,
                           "reminders": onboarding.reminders})
            out.append(Reminder(org, rid, row.email, step, f"{base_url}/recipients/confirm/{token}", now + valid))
    return out
