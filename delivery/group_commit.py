"""Outbox changes of several lanes committed together: one transaction for whatever is waiting.

A lane hands over a change (a send starts, a send was accepted) and gets a future. While one group
commits in a worker thread, the next changes queue up and go in the next group, so the number of
transactions falls as the number of lanes rises. A start commits at once (its send waits for it); an
accepted send waits for the next start's commit, for `drained` (the end of the run), for `record_at`
others or at most `record_within` seconds, so it mostly costs no transaction of its own: its letter
shows as delivered that much later, and a crash meanwhile leaves it in doubt (re-sent under the same
Message-ID, as a crash between the send and its commit always did). Each change means what
outbox.start_send / outbox.mark_delivered mean, with the same conditions (the row is still this
worker's, under its lease); a start is committed before its send begins, as before.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import bindparam, func, select, update

from core.lifecycle import event_row, insert_events
from core.storage.db import Store
from core.storage.models import Delivery, DeliveryStatus, utcnow
from delivery.outbox import ACTOR, RESEND_REASON, Job, detail_of, lock_messages, settled

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Start:
    """Charge the attempt: the send of this row begins (committed before any byte goes out)."""

    job: Job


@dataclass(frozen=True)
class Delivered:
    """The remote side accepted the row: delivered, with the reply in its trace event."""

    job: Job
    reply: str
    message_id: str | None
    detail: Mapping[str, object] = field(default_factory=dict)


Change = Start | Delivered
# Seconds an accepted send waits at most for a commit to go with (a batch of 50 letters takes ~0.15 s).
RECORD_WITHIN = 0.2
# Start: the job counting this attempt, or None when the lease passed to another worker (send
# nothing). Delivered: False when the lease passed (nothing changed).
Result = Job | bool | None


_D = Delivery.__table__.c  # type: ignore[attr-defined]  # SQLModel declares no __table__
# Built once (building them per group cost more CPU than running them); "ids" is an expanding IN list.
_OWNED = (select(_D.id).where(_D.id.in_(bindparam("ids", expanding=True)), _D.lease_owner == bindparam("owner"),
                              _D.status == DeliveryStatus.SENDING).with_for_update())
_START = (update(Delivery.__table__).where(_D.id.in_(bindparam("ids", expanding=True)))  # type: ignore[attr-defined]
          .values(attempts=_D.attempts + 1, send_started_at=func.coalesce(_D.send_started_at, bindparam("now"))))
_DELIVERED = (update(Delivery.__table__).where(_D.id == bindparam("row"))  # type: ignore[attr-defined]
              .values(status=DeliveryStatus.DELIVERED, delivered_at=bindparam("stamp"), last_reply=bindparam("reply"),
                      lease_owner=None, lease_expires_at=None, send_started_at=None))


def commit(store: Store, changes: Sequence[Change], *, owner: str, now: dt.datetime) -> list[Result]:
    """Apply `changes` in one transaction; one result per change, in order.

    Seven statements at most, whatever the group's size (eight when one letter fails as another is
    delivered): the messages locked (and their status read), the rows still this worker's, the
    starts' UPDATE, the deliveries' UPDATE (one executemany), the settled letters' outbox counts and
    their UPDATE (one per status reached), and one INSERT of every trace event."""
    with store.transaction() as session:
        connection = session.connection()
        # every message involved locked first, in id order: two groups (two instances) never wait
        # on each other in opposite orders
        messages = lock_messages(session, {c.job.message_id for c in changes})
        owned = set(connection.execute(_OWNED, {"ids": [c.job.id for c in changes], "owner": owner}).scalars())
        starts = [c.job for c in changes if isinstance(c, Start) and c.job.id in owned]
        done = [c for c in changes if isinstance(c, Delivered) and c.job.id in owned]
        events = []
        if starts:
            connection.execute(_START, {"ids": [j.id for j in starts], "now": now})
            events += [event_row(job.message_id, "delivery_resend", actor=ACTOR, reason=RESEND_REASON,
                                 detail=detail_of(replace(job, attempts=job.attempts + 1)))
                       for job in starts if job.in_doubt]
        if done:
            stamp = utcnow()
            connection.execute(_DELIVERED, [{"row": c.job.id, "reply": c.reply[:500], "stamp": stamp} for c in done])
            events += [event_row(c.job.message_id, "delivery_sent", actor=ACTOR, reason=c.reply[:500],
                                 detail=detail_of(c.job, message_id=c.message_id, **c.detail)) for c in done]
            sent = {c.job.message_id for c in done}
            events += settled(session, [m for m in messages if m.id in sent])
        insert_events(session, events)
    results: list[Result] = []
    for change in changes:
        mine = change.job.id in owned
        if isinstance(change, Start):
            results.append(replace(change.job, attempts=change.job.attempts + 1) if mine else None)
        else:
            results.append(mine)
    return results


class GroupCommitter:
    """Queues changes from the lanes of one delivery run and commits them in groups, in order."""

    def __init__(self, store: Store, *, owner: str, now: dt.datetime, max_group: int = 200,
                 record_at: int = 50, record_within: float | None = None) -> None:
        self._store, self._owner, self._now, self._max = store, owner, now, max_group
        self._record_at = record_at
        self._record_within = RECORD_WITHIN if record_within is None else record_within
        self._waiting: list[tuple[Change, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None
        self._flushing = False  # commit everything waiting: drained() waits, or a send waited long enough
        self._deadline: asyncio.TimerHandle | None = None  # for the oldest accepted send waiting

    def submit(self, change: Change) -> asyncio.Future[Any]:
        """Queue a change; the future holds its Result once committed (or the commit's error). A start
        is committed at once; an accepted send goes with the next start (see the module's docstring)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((change, future))
        if isinstance(change, Start) or len(self._waiting) >= self._record_at:
            self._commit_soon()
        elif self._deadline is None:
            self._deadline = asyncio.get_running_loop().call_later(self._record_within, self.flush)
        return future

    def flush(self) -> None:
        """Commit everything waiting now, without waiting for it."""
        self._flushing = True
        self._commit_soon()

    async def start(self, job: Job) -> Job | None:
        result = await self.submit(Start(job))
        assert result is None or isinstance(result, Job)
        return result

    async def drained(self) -> None:
        """Until every change handed over so far is committed or failed."""
        self.flush()
        while self._task is not None:
            await asyncio.shield(self._task)

    def _commit_soon(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._due():
                group, self._waiting = self._waiting[:self._max], self._waiting[self._max:]
                if not self._waiting and self._deadline is not None:  # every accepted send goes now
                    self._deadline.cancel()
                    self._deadline = None
                await self._commit(group)
        finally:
            self._task = None
            self._flushing = False

    def _due(self) -> bool:
        """Something waits that must not wait longer: a start, many accepted sends, or the run's end."""
        return bool(self._waiting) and (self._flushing or len(self._waiting) >= self._record_at
                                        or any(isinstance(change, Start) for change, _ in self._waiting))

    async def _commit(self, group: list[tuple[Change, asyncio.Future[Any]]]) -> None:
        changes = [change for change, _ in group]
        try:
            results = await asyncio.to_thread(commit, self._store, changes, owner=self._owner, now=self._now)
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0][1], error=exc)
                return
            # one change's fault must not cost the others theirs: each alone
            log.warning("a group of %d outbox changes failed (%s); committing them one by one",
                        len(group), type(exc).__name__)
            for one in group:
                await self._commit([one])
            return
        except BaseException as exc:  # the run is being torn down: everyone waiting learns it
            for _, future in group + self._waiting:
                _settle(future, error=exc)
            self._waiting = []
            return
        for (_, future), result in zip(group, results, strict=True):
            _settle(future, result=result)


def _settle(future: asyncio.Future[Any], *, result: Result = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
