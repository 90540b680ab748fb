"""Group commits of the outbox: each change means what it means alone (the lease, the settling of the
letter, its trace events and the statistics with it), and a group costs the database the same few
statements whatever its size."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlmodel import col, select

from core.storage.db import Store
from core.storage.models import Delivery, Message, TraceEvent, utcnow
from delivery import group_commit, outbox
from delivery.group_commit import Delivered, Start
from postbud.stats import recount, stats
from tests.postbud.ops_testkit import Out, Spec, add

LEASE = dt.timedelta(minutes=5)


def routed(store: Store, *recipients: str) -> str:
    """A routed letter with one pending outbox row per recipient."""
    return add(store, Spec(utcnow() - dt.timedelta(hours=1), status="routed", decided_by="rule",
                           outbox=[Out(r, status="pending", after_seconds=None) for r in recipients]))


def started(store: Store, owner: str = "w1") -> dict[tuple[str, str], outbox.Job]:
    """Every due row claimed and its send started, in one group: (message, recipient) -> job."""
    jobs = outbox.claim(store, owner, now=utcnow(), ttl=LEASE, limit=50)
    results = group_commit.commit(store, [Start(job) for job in jobs], owner=owner, now=utcnow())
    assert all(isinstance(job, outbox.Job) and job.attempts == 1 for job in results)
    return {(job.message_id, job.recipient): job for job in results if isinstance(job, outbox.Job)}


def trace(store: Store, message_id: str) -> list[TraceEvent]:
    with store.read() as session:
        return list(session.exec(select(TraceEvent).where(TraceEvent.message_id == message_id)
                                 .order_by(col(TraceEvent.id))))


def status(store: Store, message_id: str) -> tuple[str, list[tuple[str, str, str | None]]]:
    with store.read() as session:
        message = session.get(Message, message_id)
        assert message is not None
        rows = session.exec(select(Delivery).where(Delivery.message_id == message_id)
                            .order_by(col(Delivery.recipient))).all()
        return message.status, [(r.recipient, r.status, r.lease_owner) for r in rows]


def test_a_group_settles_each_letter_only_when_all_its_rows_are_delivered(store: Store) -> None:
    # GIVEN a letter for two recipients, one for one, and one whose lease passed to another worker
    two, one, taken = routed(store, "p1", "p2"), routed(store, "p1"), routed(store, "p1")
    jobs = started(store)
    outbox.release(store, jobs[(taken, "p1")], owner="w1", at=utcnow() - LEASE)
    assert [j.message_id for j in outbox.claim(store, "w2", now=utcnow(), ttl=LEASE, limit=50)] == [taken]
    # WHEN one group records the accepted sends to p1 of all three
    results = group_commit.commit(store, [Delivered(jobs[(m, "p1")], f"250 queued {m}", f"<{m}@test>")
                                          for m in (two, one, taken)], owner="w1", now=utcnow())
    # THEN the rows still this worker's are delivered; the one the other worker holds is left to it
    assert results == [True, True, False]
    assert status(store, one) == ("delivered", [("p1", "delivered", None)])
    assert status(store, taken) == ("delivering", [("p1", "sending", "w2")])
    assert "delivery_sent" not in [e.kind for e in trace(store, taken)]
    # AND the letter with a row still sending stays delivering, with the accepted send in its trace
    assert status(store, two) == ("delivering", [("p1", "delivered", None), ("p2", "sending", "w1")])
    assert [e.kind for e in trace(store, two)][-2:] == ["delivering", "delivery_sent"]
    # AND the settled letter's trace tells it in order: the send, then the letter delivered
    events = trace(store, one)
    assert [(e.kind, e.from_status, e.to_status) for e in events[-3:]] == [
        ("delivering", "routed", "delivering"), ("delivery_sent", None, None), ("delivered", "delivering", "delivered")]
    assert events[-2].reason == f"250 queued {one}" and events[-2].detail["message_id"] == f"<{one}@test>"
    assert events[-1].detail == {"deliveries": 1}
    # WHEN the second row of the first letter is recorded too
    assert group_commit.commit(store, [Delivered(jobs[(two, "p2")], "250 ok", None)], owner="w1",
                               now=utcnow()) == [True]
    # THEN that letter is delivered, counting both rows
    assert status(store, two) == ("delivered", [("p1", "delivered", None), ("p2", "delivered", None)])
    assert trace(store, two)[-1].detail == {"deliveries": 2}
    # AND the statistics' roll-up saw every change
    now = utcnow()
    assert stats(store, None, "day", now) == recount(store, None, "day", now)


def test_a_resend_in_doubt_is_traced_when_its_send_starts(store: Store) -> None:
    # GIVEN a row whose send started in a run that died before its outcome was recorded
    letter = routed(store, "p1")
    job = started(store)[(letter, "p1")]
    outbox.recover_own(store, "w1", now=utcnow())
    # WHEN it is claimed again and its send starts
    again = outbox.claim(store, "w1", now=utcnow(), ttl=LEASE, limit=50)
    assert [(j.id, j.in_doubt) for j in again] == [(job.id, True)]
    [result] = group_commit.commit(store, [Start(again[0])], owner="w1", now=utcnow())
    # THEN the second attempt is charged, and the trace says it may be a second copy
    assert isinstance(result, outbox.Job) and result.attempts == 2
    resend = trace(store, letter)[-1]
    assert resend.kind == "delivery_resend" and resend.detail["attempt"] == 2


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    sent: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        sent.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(store.engine, "before_cursor_execute", count)


def test_a_group_costs_the_same_few_statements_whatever_its_size(store: Store) -> None:
    # GIVEN nine letters whose sends started, and nine more claimed
    first = [routed(store, "p1") for _ in range(9)]
    jobs = started(store)
    [routed(store, "p1") for _ in range(9)]
    waiting = [j for j in outbox.claim(store, "w1", now=utcnow(), ttl=LEASE, limit=50) if j.message_id not in first]
    sizes = []
    for size in (1, 8):
        # WHEN a group records `size` accepted sends and starts `size` others
        changes: list[group_commit.Change] = [Delivered(jobs[(m, "p1")], "250 ok", None) for m in first[:size]]
        changes += [Start(job) for job in waiting[:size]]
        del first[:size], waiting[:size]
        with statements(store) as sent:
            assert all(group_commit.commit(store, changes, owner="w1", now=utcnow()))
        sizes.append(len(sent))
    # THEN both groups took the same statements: lock, owned rows, the two UPDATEs of the outbox, the
    # settled letters' counts and UPDATE, one INSERT of all trace events
    assert sizes == [7, 7]
