"""The service's state as facts: mailboxes, rules, recipients, outbox and queue backlog, models, keys.

`service_status` reads the database and the configured files only (no daemon needs to run), so the
CLI's `postbud status` and a web console show the same truth. The rules' and the recipients file's
"active since" come from the daemon's reload trace events (`postbud/reload.py`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from core.config import Config
from core.storage.db import Store
from core.storage.models import Delivery, DeliveryStatus, Mailbox, Message, MessageStatus, Organisation, TraceEvent
from delivery.errors import RecipientsFileError
from delivery.keys import check_recipient_key
from delivery.onboarding import uploaded_key
from delivery.recipients import RecipientsFile, load_recipients
from postbud.reload import RECIPIENTS_LOADED, RECIPIENTS_REFUSED, RULES_LOADED, RULES_REFUSED
from postbud.runtime import open_models
from rules import RuleErrors
from rules import load as load_rules


@dataclass(frozen=True)
class MailboxState:
    mailbox: str  # CVR/name
    provider: str
    status: str  # active, backoff, needs_reauth, disabled ...; "not configured" when left out of the config
    last_success_at: str | None
    last_error: str | None
    consecutive_failures: int
    next_poll_at: str | None


@dataclass(frozen=True)
class FileState:
    """The rules folder or the recipients file: what the daemon last took, and a later refusal."""

    path: str | None
    version: str | None  # the rules' version (a hash of the files); None for the recipients file
    active_since: str | None  # the daemon's last successful (re)load
    refused_at: str | None  # a change refused after that; the last good one stays active
    refused: str | None
    problem: str | None  # what is wrong with the files on disk now, if anything


@dataclass(frozen=True)
class Backlog:
    """Work waiting: outbox rows not yet sent (per channel) and held messages (the manual queue)."""

    outbox_waiting: dict[str, int]
    outbox_oldest_age_seconds: float | None
    outbox_failed: int
    queue_held: int
    queue_oldest_age_seconds: float | None


@dataclass(frozen=True)
class ModelState:
    organisation: str
    trained_at: str | None
    examples: int | None
    threshold: float | None  # routes alone at or above this probability; None: no automation
    no_automation: str | None  # why the model does not route alone


@dataclass(frozen=True)
class KeyWarning:
    organisation: str
    recipient: str
    days_left: int | None
    problem: str


@dataclass(frozen=True)
class ServiceStatus:
    at: str
    mailboxes: list[MailboxState]
    rules: FileState
    recipients: FileState
    backlog: Backlog
    models: list[ModelState]
    key_warnings: list[KeyWarning] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).isoformat()


def _age(now: datetime, at: datetime | None) -> float | None:
    if at is None:
        return None
    return max(0.0, (now - (at if at.tzinfo else at.replace(tzinfo=timezone.utc))).total_seconds())


def service_status(config: Config, store: Store, *, now: datetime | None = None) -> ServiceStatus:
    """Everything an operator asks first, in one read."""
    now = now or datetime.now(timezone.utc)
    return ServiceStatus(
        at=now.isoformat(),
        mailboxes=mailbox_states(config, store),
        rules=rules_state(config, store),
        recipients=recipients_state(config, store),
        backlog=backlog(store, now),
        models=model_states(config, store),
        key_warnings=key_warnings(config, now, store),
    )


def mailbox_states(config: Config, store: Store) -> list[MailboxState]:
    configured = {(o.cvr, m.name): m for o in config.organisations for m in o.mailboxes}
    with store.read() as session:
        rows = session.exec(select(Mailbox, Organisation.cvr).join(Organisation)
                            .order_by(col(Organisation.cvr), col(Mailbox.name))).all()
    seen = set()
    out = []
    for mb, cvr in rows:
        seen.add((cvr, mb.name))
        mb_config = configured.get((cvr, mb.name))
        status = "not configured" if mb_config is None else "disabled" if not mb_config.enabled else mb.status
        out.append(MailboxState(f"{cvr}/{mb.name}", mb.provider, status, _iso(mb.last_success_at), mb.last_error,
                                mb.consecutive_failures, _iso(mb.next_poll_at) if status == mb.status else None))
    for (cvr, name), mb_config in sorted(configured.items()):
        if (cvr, name) not in seen:  # configured since the daemon last started
            out.append(MailboxState(f"{cvr}/{name}", mb_config.type, "not started yet", None, None, 0, None))
    return out


def _last_events(store: Store, kinds: tuple[str, str]) -> tuple[TraceEvent | None, TraceEvent | None]:
    """The newest event of each kind (loaded, refused)."""
    found: list[TraceEvent | None] = []
    with store.read() as session:
        for kind in kinds:
            found.append(session.exec(
                select(TraceEvent).where(TraceEvent.kind == kind, col(TraceEvent.message_id).is_(None))
                .order_by(col(TraceEvent.at).desc(), col(TraceEvent.id).desc()).limit(1)
            ).first())
    return found[0], found[1]


def _file_state(path: str | None, version: str | None, problem: str | None,
                loaded: TraceEvent | None, refused: TraceEvent | None) -> FileState:
    later = refused is not None and (loaded is None or (refused.at, refused.id or 0) > (loaded.at, loaded.id or 0))
    detail = (refused.detail if refused is not None else {}) or {}
    reason = detail.get("problem") or "; ".join(detail.get("issues", [])[:3]) or None
    return FileState(path, version, _iso(loaded.at) if loaded else None,
                     _iso(refused.at) if later and refused else None, reason if later else None, problem)


def rules_state(config: Config, store: Store) -> FileState:
    directory = config.rules.directory
    if directory is None:
        return FileState(None, None, None, None, None, None)
    loaded, refused = _last_events(store, (RULES_LOADED, RULES_REFUSED))
    active = (loaded.detail or {}).get("version") if loaded is not None else None
    problem = None
    try:
        on_disk = load_rules(directory, _recipients_or_none(config)).version
    except RuleErrors as exc:
        on_disk, problem = None, "; ".join(str(i) for i in exc.issues[:3])
    if active is not None and on_disk is not None and on_disk != active:
        problem = f"the files are version {on_disk}; the daemon takes them at its next routing turn"
    return _file_state(str(directory), active or on_disk, problem, loaded, refused)


def recipients_state(config: Config, store: Store) -> FileState:
    path = config.recipients.file
    loaded, refused = _last_events(store, (RECIPIENTS_LOADED, RECIPIENTS_REFUSED))
    if path is None:
        return FileState(None, None, None, None, None, None)
    problem = None
    try:
        load_recipients(path)
    except RecipientsFileError as exc:
        problem = str(exc)
    return _file_state(str(path), None, problem, loaded, refused)


def _recipients_or_none(config: Config) -> RecipientsFile | None:
    """The recipients directory, or None when the file does not load (reported on its own)."""
    if config.recipients.file is None:
        return None
    try:
        return load_recipients(config.recipients.file)
    except RecipientsFileError:
        return None


def backlog(store: Store, now: datetime) -> Backlog:
    waiting = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)
    with store.read() as session:
        per_channel = session.exec(
            select(Delivery.channel, func.count()).where(col(Delivery.status).in_(waiting)).group_by(Delivery.channel)
        ).all()
        oldest_waiting = session.exec(select(func.min(Delivery.created_at))
                                      .where(col(Delivery.status).in_(waiting))).one()
        failed = session.exec(select(func.count()).select_from(Delivery)
                              .where(Delivery.status == DeliveryStatus.FAILED)).one()
        held = session.exec(select(func.count(), func.min(Message.received_at))
                            .where(Message.status == MessageStatus.HELD)).one()
    return Backlog(dict(sorted((c, int(n)) for c, n in per_channel)), _age(now, oldest_waiting), int(failed),
                   int(held[0]), _age(now, held[1]))


def model_states(config: Config, store: Store) -> list[ModelState]:
    if not config.model.enabled:
        return [ModelState(o.cvr, None, None, None, "the model is disabled ([model] enabled = false)")
                for o in config.organisations]
    models = open_models(config, store)
    out = []
    for org in config.organisations:
        if not models.path(org.cvr).exists():
            out.append(ModelState(org.cvr, None, None, None, "no model trained yet (`postbud model train`)"))
            continue
        model = models.get(org.cvr)
        if model is None:
            out.append(ModelState(org.cvr, None, None, None,
                                  "the model file is refused (signature); it is retrained at the next training"))
            continue
        trained = datetime.fromtimestamp(model.trained_at, timezone.utc).isoformat()
        threshold = model.effective_threshold if model.can_automate else None
        # Corrections may have paused a model whose own evidence allowed it to route alone.
        paused = models.state(org.cvr, fresh=True).paused
        out.append(ModelState(org.cvr, trained, model.n_examples, threshold,
                              paused or (None if threshold is not None else (model.reason or "no threshold reached"))))
    return out


def key_warnings(config: Config, now: datetime, store: Store | None = None) -> list[KeyWarning]:
    """Recipients whose key is unusable, or expires within [delivery] key_warning_days (with `store`, a
    key the recipient gave on the confirmation page counts when the file names none)."""
    if config.recipients.file is None:
        return []
    try:
        directory = load_recipients(config.recipients.file)
    except RecipientsFileError:
        return []  # reported under recipients
    out = []
    days = config.delivery.key_warning_days
    for cvr in directory.organisations():
        for rid in sorted(directory.ids(cvr)):
            recipient, uploaded = directory.get(cvr, rid), None
            if store is not None and recipient.key_path is None:
                with store.read() as session:
                    recipient, uploaded = uploaded_key(session, cvr, recipient)
            if recipient.key_kind is None and recipient.webhook is not None and recipient.email is None:
                continue  # a webhook-only recipient needs no key
            key = check_recipient_key(recipient, trust_store=config.delivery.trust_store, now=now, key=uploaded)
            if not key.valid:
                out.append(KeyWarning(cvr, rid, key.days_left, key.reason))
            elif key.expires_within(days):
                out.append(KeyWarning(cvr, rid, key.days_left, f"expires in {key.days_left} days"))
    return out
