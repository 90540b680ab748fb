"""Issue 17: routing takes collected letters in groups, one transaction per group, nothing given up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from collector.ledger import MailboxKey, sync_mailboxes
from core.lifecycle import move
from core.metrics import Metrics
from core.storage.models import Delivery, Message, MessageStatus, RoutingDecision, TraceEvent
from postbud.runtime import Runtime
from router.decision import Action, Decision, Facts
from router.stage import route_batch
from tests.conftest import MakeConfig
from tests.router.test_learning import collect, letter


class RouteOrBreak:
    """Routes to finance; raises on the letter whose title says so (a crash mid-group)."""

    def decide(self, facts: Facts) -> Decision:
        if "BREAK" in facts.message.title:
            raise RuntimeError("the process died here")
        return Decision(Action.ROUTE, "rule", ("finance",), rule="test")


@pytest.fixture
def runtime(make_config: MakeConfig) -> Iterator[Runtime]:
    rt = Runtime.create(make_config(extra_org=""))
    yield rt
    rt.store.dispose()


def _letters(runtime: Runtime, titles: list[str]) -> MailboxKey:
    import dataclasses
    import random

    (mailbox,) = sync_mailboxes(runtime.store, runtime.config)
    rng = random.Random(1)
    for i, title in enumerate(titles):
        collect(runtime, mailbox, dataclasses.replace(letter(i, "finance", rng), title=title))
    return mailbox


def _state(runtime: Runtime) -> tuple[list[str], int, list[str]]:
    with runtime.store.read() as session:
        statuses = [m.status for m in session.exec(select(Message).order_by(col(Message.received_at)))]
        rows = len(session.exec(select(Delivery)).all())
        kinds = [e.kind for e in session.exec(select(TraceEvent).order_by(col(TraceEvent.id)))]
    return statuses, rows, kinds


def test_a_group_is_routed_in_one_pass_each_letter_with_its_trace_and_outbox_row(runtime: Runtime) -> None:
    _letters(runtime, [f"Brev {i}" for i in range(5)])
    assert route_batch(runtime.store, RouteOrBreak(), Metrics(), limit=3) == 3
    statuses, rows, kinds = _state(runtime)
    assert statuses == ["routed"] * 3 + ["collected"] * 2  # the oldest first
    assert rows == 3 and kinds.count("routed") == 3
    assert route_batch(runtime.store, RouteOrBreak(), Metrics(), limit=3) == 2
    assert route_batch(runtime.store, RouteOrBreak(), Metrics(), limit=3) == 0


def test_a_failure_inside_a_group_leaves_the_whole_group_collected(runtime: Runtime) -> None:
    _letters(runtime, ["Brev 0", "Brev 1 BREAK", "Brev 2"])
    with pytest.raises(RuntimeError):
        route_batch(runtime.store, RouteOrBreak(), Metrics(), limit=10)
    statuses, rows, kinds = _state(runtime)
    # nothing half-done: delivery never sees a status change without its trace event and outbox rows
    assert statuses == ["collected"] * 3 and rows == 0 and "routed" not in kinds


class RouteHoldOrBreak(RouteOrBreak):
    """As RouteOrBreak; holds the letters whose title says HOLD."""

    def decide(self, facts: Facts) -> Decision:
        if "HOLD" in facts.message.title:
            return Decision(Action.HOLD, "rule", rule="hold it", reason="a person must look")
        return super().decide(facts)


def test_a_mixed_group_writes_each_letter_as_one_letter_alone_would_be(runtime: Runtime) -> None:
    # GIVEN a group: two letters to route, one to hold and one whose sealed content was damaged
    _letters(runtime, ["Brev 0", "Brev 1 HOLD", "Brev 2 damaged", "Brev 3"])
    with runtime.store.transaction() as session:
        damaged = session.exec(select(Message).where(Message.title == "Brev 2 damaged")).one()
        assert damaged.content is not None
        damaged.content = damaged.content[:-1] + bytes([damaged.content[-1] ^ 1])
        session.add(damaged)
    metrics = Metrics()
    # WHEN the group is routed in one pass
    assert route_batch(runtime.store, RouteHoldOrBreak(), metrics, limit=10) == 4
    # THEN each letter has its status, reason, decision, outbox rows and one trace event of the move
    with runtime.store.read() as session:
        letters = {m.title: m for m in session.exec(select(Message))}
        decisions = {d.message_id: d for d in session.exec(select(RoutingDecision))}
        rows = list(session.exec(select(Delivery)))
        events = list(session.exec(select(TraceEvent).where(TraceEvent.actor == "router")))
    routed, held, bad, routed_too = (letters[t] for t in ("Brev 0", "Brev 1 HOLD", "Brev 2 damaged", "Brev 3"))
    assert [m.status for m in (routed, held, bad, routed_too)] == ["routed", "held", "quarantined", "routed"]
    assert held.status_reason == "a person must look"
    assert bad.status_reason == "content cannot be read: VaultError"
    assert routed.routed_by == "rule" and held.routed_by is None  # the statistics' column, kept by the database
    assert set(decisions) == {routed.id, held.id, routed_too.id}  # no decision for unreadable content
    assert decisions[routed.id].recipients == ["finance"] and decisions[routed.id].actor == "router"
    assert decisions[held.id].action == "hold" and decisions[held.id].rule == "hold it"
    assert sorted((r.message_id, r.idempotency_key, r.status) for r in rows) == sorted(
        (m.id, f"{m.id}:finance:email", "pending") for m in (routed, routed_too))
    by_letter = {m.id: [(e.kind, e.from_status, e.to_status) for e in events if e.message_id == m.id]
                 for m in (routed, held, bad, routed_too)}
    assert by_letter == {
        routed.id: [("routed", "collected", "routed")],
        held.id: [("held", "collected", "held")],
        bad.id: [("quarantined", "collected", "quarantined")],
        routed_too.id: [("routed", "collected", "routed")],
    }
    event = next(e for e in events if e.message_id == routed.id)
    assert event.detail["decided_by"] == "rule" and event.detail["recipients"] == ["finance"]
    assert metrics.registry.get_sample_value("postbud_routing_decisions_total",
                                             {"decided_by": "rule", "outcome": "route"}) == 2


class RouteBy:
    """Routes every letter to finance as decided by `decided_by`."""

    def __init__(self, decided_by: str) -> None:
        self.decided_by = decided_by

    def decide(self, facts: Facts) -> Decision:
        return Decision(Action.ROUTE, self.decided_by, ("finance",))


@pytest.mark.parametrize(("decided_by", "routed_by"), [
    ("rule", "rule"), ("model", "model"), ("default", "default"), ("suggestion", None)])
def test_who_routed_a_letter_is_what_its_decision_makes_it(runtime: Runtime, decided_by: str,
                                                           routed_by: str | None) -> None:
    # GIVEN letters routed by a decider of each kind (routing writes `routed_by` with the status, the
    # decision's trigger keeps it when it agrees)
    _letters(runtime, ["Brev 0", "Brev 1"])
    assert route_batch(runtime.store, RouteBy(decided_by), Metrics(), limit=10) == 2
    # THEN the statistics' column and the day's counts say what the decisions say
    with runtime.store.read() as session:
        assert [m.routed_by for m in session.exec(select(Message))] == [routed_by] * 2
        measures = {row.measure: row.total for row in session.execute(text(
            "SELECT measure, SUM(count) AS total FROM daily_count GROUP BY measure HAVING SUM(count) != 0"))}
    expected = {"status:routed": 2} | ({f"routed:{routed_by}": 2} if routed_by else {})
    assert measures == expected


class MoveAnotherOnWhileDeciding(RouteOrBreak):
    """Routes to finance; deciding "Brev 0", another writer quarantines "Brev 1" meanwhile (on SQLite,
    where the group is decided before its write transaction)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def decide(self, facts: Facts) -> Decision:
        if facts.message.title == "Brev 0":
            with self.runtime.store.transaction() as session:
                other = session.exec(select(Message).where(Message.title == "Brev 1")).one()
                move(session, [other], MessageStatus.QUARANTINED, kind="quarantined", actor="test", reason="moved")
        return super().decide(facts)


# SQLite only: PostgreSQL decides a group under its rows' locks, so the other writer would wait for the group
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_letter_another_writer_moves_on_while_its_group_is_decided_is_left_as_that_writer_left_it(
    runtime: Runtime
) -> None:
    # GIVEN three letters, the second moved on by another writer while the group is decided
    _letters(runtime, ["Brev 0", "Brev 1", "Brev 2"])
    # WHEN the group is routed
    assert route_batch(runtime.store, MoveAnotherOnWhileDeciding(runtime), Metrics(), limit=10) == 2
    # THEN the others are routed; that one keeps the other writer's move alone: no decision, outbox
    # row or routing event of its own
    with runtime.store.read() as session:
        letters = {m.title: m for m in session.exec(select(Message))}
        decided = {d.message_id for d in session.exec(select(RoutingDecision))}
        rows = {r.message_id for r in session.exec(select(Delivery))}
        events = [(e.message_id, e.kind) for e in session.exec(select(TraceEvent).where(
            col(TraceEvent.kind).in_(["routed", "quarantined"])))]
    assert [letters[t].status for t in ("Brev 0", "Brev 1", "Brev 2")] == ["routed", "quarantined", "routed"]
    routed = {letters["Brev 0"].id, letters["Brev 2"].id}
    assert decided == rows == routed
    assert sorted(events) == sorted([(i, "routed") for i in routed] + [(letters["Brev 1"].id, "quarantined")])


class Slow(RouteBy):
    """Routes every letter to finance, slowly: instances beside each other overlap."""

    def decide(self, facts: Facts) -> Decision:
        time.sleep(0.002)
        return super().decide(facts)


def test_instances_routing_side_by_side_route_each_letter_once(make_config: MakeConfig) -> None:
    # GIVEN letters in a database two instances share
    first = Runtime.create(make_config(extra_org=""))
    second = Runtime.create(first.config)
    try:
        _letters(first, [f"Brev {i}" for i in range(60)])
        # WHEN both route at once, in groups
        def route_all(rt: Runtime) -> int:
            taken = 0
            while done := route_batch(rt.store, Slow("rule"), Metrics(), limit=7):
                taken += done
            return taken

        with ThreadPoolExecutor(2) as pool:
            taken = list(pool.map(route_all, [first, second]))
        # THEN every letter is routed once: one decision, one outbox row, one routing event each
        assert sum(taken) == 60
        with first.store.read() as session:
            assert {m.status for m in session.exec(select(Message))} == {"routed"}
            decisions = [d.message_id for d in session.exec(select(RoutingDecision))]
            rows = [r.message_id for r in session.exec(select(Delivery))]
            events = [e.message_id for e in session.exec(select(TraceEvent).where(TraceEvent.kind == "routed"))]
        assert len(decisions) == len(set(decisions)) == 60
        assert sorted(rows) == sorted(events) == sorted(decisions)
    finally:
        first.store.dispose()
        second.store.dispose()


class MoveTheGroupOnWhileDeciding(RouteOrBreak):
    """Routes to finance; deciding "Brev 0", another writer quarantines it and "Brev 1" meanwhile."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def decide(self, facts: Facts) -> Decision:
        if facts.message.title == "Brev 0":
            with self.runtime.store.transaction() as session:
                group = session.exec(select(Message).where(col(Message.title).in_(["Brev 0", "Brev 1"]))).all()
                move(session, list(group), MessageStatus.QUARANTINED, kind="quarantined", actor="test", reason="moved")
        return super().decide(facts)


# SQLite only, as the test above
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_group_another_writer_moves_on_entirely_while_it_is_decided_gives_way_to_the_next(
    runtime: Runtime
) -> None:
    # GIVEN three letters, the first two (a group of two) moved on by another writer while they are decided
    _letters(runtime, ["Brev 0", "Brev 1", "Brev 2"])
    # WHEN a group is routed
    taken = route_batch(runtime.store, MoveTheGroupOnWhileDeciding(runtime), Metrics(), limit=2)
    # THEN the call goes on to the next group: the third letter is routed, the two keep the other writer's move
    with runtime.store.read() as session:
        statuses = {m.title: m.status for m in session.exec(select(Message))}
    assert taken == 1
    assert statuses == {"Brev 0": "quarantined", "Brev 1": "quarantined", "Brev 2": "routed"}
