"""Issue 17: routing takes collected letters in groups, one transaction per group, nothing given up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlmodel import col, select

from collector.ledger import MailboxKey, sync_mailboxes
from core.metrics import Metrics
from core.storage.models import Delivery, Message, TraceEvent
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
