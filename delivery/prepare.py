"""A delivery run's rows made ready to send, a chunk at a time: the checks, the content, the composed message.

The checks (channel, recipient, approval, key) run in a worker thread of the daemon; the rows that
pass are read (their content unsealed) and composed (encrypted) in the same thread.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from core.config import DeliverySettings
from core.storage.db import Store
from delivery.approval import Invitation, admission, admitted_as_is
from delivery.channels import Channel, Composing, Outbound, delivery_token
from delivery.contents import Content, read_contents
from delivery.errors import DeliveryError
from delivery.lanes import Ready
from delivery.keys import KeyStatus, check_pgp_key, check_recipient_key, check_smime_cert
from delivery.onboarding import uploaded_key
from delivery.outbound import NotificationRoute
from delivery.outbox import ACTOR, Job
from delivery.pauses import ChannelPauses
from delivery.preferences import RouteCache
from delivery.recipients import KeyKind, Recipient, RecipientsFile, UnknownRecipient

log = logging.getLogger(__name__)
GONE = "message content is gone (purged)"


@dataclass(frozen=True)
class Order:
    """One outbox row that passed its checks, to read and compose."""

    token: str
    recipient: Recipient
    key: bytes
    notification: NotificationRoute | None = None


def _admit(store: Store, job: Job, recipient: Recipient, status: KeyStatus, now: dt.datetime,
           settings: DeliverySettings, invitations: list[Invitation], key: bytes | None) -> str | None:
    with store.engine.connect() as connection:  # most often all there is to it: no write lock, no commit
        if admitted_as_is(connection, job.organisation, recipient, status, key=key):
            return None
    with store.transaction() as session:
        return admission(session, job.organisation, recipient, status, actor=ACTOR, now=now, settings=settings,
                         invitations=invitations, key=key)


def _with_uploaded_key(store: Store, org: str, recipient: Recipient) -> tuple[Recipient, bytes | None]:
    with store.read() as session:
        return uploaded_key(session, org, recipient)


class Preparer:
    """One delivery run's preparation; what it learns (keys' days left, new invitations) goes in the
    run's `days_left` and `invitations`, which it shares."""

    def __init__(self, store: Store, settings: DeliverySettings, routes: RouteCache, directory: RecipientsFile | None,
                 channels: Mapping[str, Channel], now: dt.datetime, pauses: ChannelPauses, *,
                 invitations: list[Invitation], days_left: dict[str, int]) -> None:
        self.store, self.settings, self.routes, self.directory = store, settings, routes, directory
        self.channels, self.now, self.pauses = channels, now, pauses
        self.invitations, self.days_left = invitations, days_left
        self.contents: dict[str, Content | None] = {}
        self.admitted: dict[tuple[str, str], tuple[str | None, bytes | None]] = {}
        # recipients with a key from the confirmation page (the file names none), and its bytes
        self.uploaded: dict[tuple[str, str], tuple[Recipient, bytes | None]] = {}

    def prepare(self, jobs: list[Job]) -> list[Ready]:
        """The checks, the content and the encrypted message for a chunk of rows (run in a worker thread)."""
        ready: dict[int, Ready] = {}
        orders: dict[int, Order] = {}  # checked rows to read and compose
        for n, job in enumerate(jobs):
            if self.pauses.until(job.channel, self.now) is not None:
                ready[n] = Ready(job, paused=True)
                continue
            try:
                problem, order = self._check(job)
            except Exception as exc:
                ready[n] = Ready(job, error=exc)
                continue
            if problem is not None or order is None:
                ready[n] = Ready(job, problem=problem or "nothing to send")
            else:
                orders[n] = order
        if orders:
            ready.update(self._compose(jobs, orders))
        return [ready[n] for n in range(len(jobs))]

    def _compose(self, jobs: list[Job], orders: dict[int, Order]) -> dict[int, Ready]:
        try:
            wanted = {jobs[n].message_id for n in orders} - set(self.contents)
            if wanted:
                self.contents.update(read_contents(self.store, wanted))
        except Exception as exc:
            return {n: Ready(jobs[n], error=exc) for n in orders}
        done: dict[int, Ready] = {}
        for n, order in orders.items():
            job = jobs[n]
            content = self.contents.get(job.message_id)
            if content is None:
                done[n] = Ready(job, problem=GONE)
                continue
            message, received_at = content
            item = Outbound(order.token, message, order.recipient, order.key, job.message_id, received_at,
                            notification=order.notification)
            channel = self.channels[job.channel]
            try:
                done[n] = Ready(job, item=channel.compose(item) if isinstance(channel, Composing) else item)
            except DeliveryError as exc:
                done[n] = Ready(job, item=item, failure=exc)
            except Exception as exc:
                done[n] = Ready(job, error=exc)
        return done

    def _check(self, job: Job) -> tuple[str | None, Order | None]:
        """The checks before every send, in order; a reason to hold, or what to send (its message not read yet)."""
        if job.channel not in self.settings.channels or job.channel not in self.channels:
            return f"channel {job.channel} is turned off", None
        if self.directory is None:
            return "no recipients file is configured", None
        try:
            recipient = self.directory.get(job.organisation, job.recipient)
        except UnknownRecipient as exc:
            return str(exc.args[0]), None
        uploaded: bytes | None = None
        if recipient.key_path is None:
            pair = (job.organisation, job.recipient)
            if pair not in self.uploaded:
                self.uploaded[pair] = _with_uploaded_key(self.store, job.organisation, recipient)
            recipient, uploaded = self.uploaded[pair]
        if job.channel in self.directory.channels_off(job.organisation):
            # reroute.py moved it to the default channel unless that cannot reach the recipient: a person decides
            return f"channel {job.channel} is switched off for organisation {job.organisation}", None
        admitted = self.admitted.get((job.organisation, job.recipient))
        if job.channel == "post" or (recipient.tls_only and job.channel == "email"):
            # paper cannot be encrypted, and a TLS-only forward target is sent in clear on purpose: the
            # administrator's entry in the file (postal address, tls_only) is the approval
            admitted = (None if job.channel != "post" or recipient.postal_address is not None
                        else f"recipient {recipient.id} has no postal_address", b"")
        if admitted is None:
            # once per recipient and run: the key file is read once, and the bytes checked are
            # the bytes encrypted to
            key, status = self._key(recipient, uploaded)
            self._note_key(job, status)
            problem = _admit(self.store, job, recipient, status, self.now, self.settings, self.invitations, key)
            admitted = self.admitted[(job.organisation, job.recipient)] = (problem, key)
        problem, key = admitted
        if problem is not None or key is None:
            return problem or "no key material", None
        notification = self.routes.get(job.organisation, recipient, job.channel)
        return None, Order(delivery_token(job.idempotency_key), recipient, key, notification)

    def _key(self, recipient: Recipient, uploaded: bytes | None) -> tuple[bytes | None, KeyStatus]:
        kind, path = recipient.key_kind, recipient.key_path
        if kind is None or (path is None and uploaded is None):
            return None, check_recipient_key(recipient, now=self.now)  # says why: no key material
        try:
            data = path.read_bytes() if path is not None else uploaded or b""
        except OSError as exc:
            return None, KeyStatus(False, f"cannot read {path}: {exc.strerror}", None, None)
        if kind is KeyKind.PGP:
            return data, check_pgp_key(data, now=self.now)
        trust = self.settings.trust_store
        try:
            anchors = trust.read_bytes() if trust is not None else None
        except OSError as exc:
            return None, KeyStatus(False, f"cannot read trust store {trust}: {exc.strerror}", None, None)
        return data, check_smime_cert(data, trust_store=anchors, now=self.now)

    def _note_key(self, job: Job, status: KeyStatus) -> None:
        if status.days_left is not None and status.valid:
            known = self.days_left.get(job.channel, status.days_left)
            self.days_left[job.channel] = min(status.days_left, known)
        if status.expires_within(self.settings.key_warning_days):
            log.warning("recipient %s of %s: key expires in %s days", job.recipient, job.organisation,
                        status.days_left)
