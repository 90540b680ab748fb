"""Claiming due outbox rows: pending rows that fell due and rows whose sender's lease ran out, in the
order they fell due, and on SQLite without reading the whole outbox to find them."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event, update
from sqlmodel import col, select

from core.storage.db import Store
from core.storage.models import Delivery, utcnow
from delivery import outbox
from tests.postbud.ops_testkit import Out, Spec, add

LEASE = dt.timedelta(minutes=5)


def letters(store: Store, n: int, status: str = "pending") -> list[str]:
    """`n` routed letters with one outbox row each; their rows' ids."""
    messages = [add(store, Spec(utcnow() - dt.timedelta(hours=1), status="routed", decided_by="rule",
                                outbox=[Out("p1", status=status, after_seconds=None)])) for _ in range(n)]
    with store.read() as session:
        return [session.exec(select(Delivery.id).where(Delivery.message_id == m)).one() for m in messages]


def set_rows(store: Store, ids: list[str], **values: object) -> None:
    with store.transaction() as session:
        session.execute(update(Delivery).where(col(Delivery.id).in_(ids)).values(**values))


def test_a_claim_takes_due_rows_and_expired_leases_in_the_order_they_fell_due(store: Store) -> None:
    now = utcnow()
    rows = letters(store, 8)
    # GIVEN pending rows due at different times, one not due yet, a row under a live lease, two
    # whose lease ran out, and a delivered one
    for n, row in enumerate(rows):
        set_rows(store, [row], next_attempt_at=now - dt.timedelta(minutes=10 * (8 - n)))
    set_rows(store, [rows[1]], next_attempt_at=now + dt.timedelta(minutes=1))
    set_rows(store, [rows[2]], status="sending", lease_owner="dead", lease_expires_at=now + dt.timedelta(minutes=1))
    set_rows(store, [rows[3], rows[6]], status="sending", lease_owner="dead",
             lease_expires_at=now - dt.timedelta(seconds=1))
    set_rows(store, [rows[5]], status="delivered", lease_owner=None)
    # WHEN a worker claims three rows, then the rest
    first = [job.id for job in outbox.claim(store, "w1", now=now, ttl=LEASE, limit=3)]
    rest = [job.id for job in outbox.claim(store, "w1", now=now, ttl=LEASE, limit=50)]
    # THEN the due rows came in the order they fell due, pending or with their lease run out
    assert first == [rows[0], rows[3], rows[4]]
    assert rest == [rows[6], rows[7]]


# SQLite only: PostgreSQL plans the claim with its own statistics
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_claim_on_sqlite_seeks_the_outbox_index_instead_of_reading_every_row(
        store: Store, database_url: str) -> None:
    # GIVEN an outbox of delivered rows and a few due ones, with statistics that find status unselective
    rows = letters(store, 60, status="delivered")
    set_rows(store, rows[:3], status="pending")
    with store.transaction() as session:
        session.connection().exec_driver_sql("ANALYZE")
    seen: list[tuple[str, object]] = []

    def record(conn: object, cursor: object, statement: str, parameters: object, *args: object) -> None:
        seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        claimed = outbox.claim(store, "w1", now=utcnow(), ttl=LEASE, limit=50)
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert sorted(job.id for job in claimed) == sorted(rows[:3])
    # WHEN SQLite plans the claim's search for due rows
    statement, parameters = seen[0]
    with store.read() as session:
        plan = [row[-1] for row in session.connection().exec_driver_sql(
            f"EXPLAIN QUERY PLAN {statement}", parameters)]  # type: ignore[arg-type]
    # THEN it seeks the index for each kind of due row, and reads no table row by row
    assert [step for step in plan if step.startswith("SCAN delivery")] == [], plan
    assert sum("USING INDEX ix_delivery_status_next" in step for step in plan) == 2, plan
