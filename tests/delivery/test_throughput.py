"""Delivery in parallel and in groups: several kept-open SMTP connections, each carrying several letters;
starting sends and recording accepted ones committed together, with the same conditions as one by one."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from delivery_testkit import RecordingHandler
from worker_testkit import collect_and_route, deliver, delivery_toml, message_id_of, recipients_toml, state, vouch

from core.storage.db import Store
from core.storage.models import utcnow
from delivery import group_commit, outbox
from delivery.group_commit import Delivered, GroupCommitter, Start
from postbud.runtime import Runtime

if TYPE_CHECKING:
    from delivery_testkit import RunningSmtp, ServeFactory, SmimeRecipient

    from tests.conftest import MakeConfig

LEASE = dt.timedelta(seconds=60)


@dataclass
class ConnectionsHandler(RecordingHandler):
    """Records which connection carried each letter, and how many transactions were open at once."""

    per_connection: Counter[Any] = field(default_factory=Counter)
    open_now: int = 0
    most_open: int = 0

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        await asyncio.sleep(0)  # let the other connections' commands in, as a busy relay would
        return await super().handle_MAIL(server, session, envelope, address, options)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.open_now -= 1
        self.per_connection[session.peer] += 1
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
async def smtp(smtp_server: ServeFactory) -> RunningSmtp:
    return await smtp_server(handler=ConnectionsHandler())


@pytest.fixture
async def rt(make_config: MakeConfig, smtp: RunningSmtp, smime_recipient: SmimeRecipient,
             tmp_path: Path) -> AsyncIterator[Runtime]:
    recipients = recipients_toml(tmp_path, smime_recipient)
    runtime = Runtime.create(make_config(extra=delivery_toml(smtp, recipients, extra="smtp_connections = 3")))
    yield runtime
    await runtime.aclose()


async def test_letters_go_over_several_kept_open_connections_at_once(rt: Runtime, smtp: RunningSmtp) -> None:
    # GIVEN twelve routed letters and smtp_connections = 3
    vouch(rt)
    ids = await collect_and_route(rt, *range(12))
    # WHEN one delivery run sends them
    assert await deliver(rt, limit=50) == 12
    # THEN three connections carried them, several letters each, more than one transaction at a time
    handler = smtp.handler
    assert isinstance(handler, ConnectionsHandler)
    assert len(handler.per_connection) == 3 and sum(handler.per_connection.values()) == 12
    assert max(handler.per_connection.values()) > 1
    assert 1 < handler.most_open <= 3
    # AND every letter arrived once, delivered with one attempt and its own Message-ID
    assert len({message_id_of(raw) for raw, _ in handler.messages}) == 12
    assert sorted(state(rt, mid).deliveries[0][1:] for mid in ids) == [("delivered", 1)] * 12
    assert all(state(rt, mid).message == "delivered" for mid in ids)
    # AND each letter's trace tells its steps in order, each change with its event as one by one did
    for mid in ids:
        trace = state(rt, mid)
        assert [k for k in trace.kinds() if k != "acknowledged"] == [
            "collected", "routed", "delivering", "delivery_sent", "delivered"]
        assert [(e.from_status, e.to_status) for e in trace.events if e.kind in ("delivering", "delivered")] == [
            ("routed", "delivering"), ("delivering", "delivered")]
        assert trace.event("delivered").detail == {"deliveries": 1}


def claimed(rt: Runtime, owner: str = "w1") -> list[outbox.Job]:
    return outbox.claim(rt.store, owner, now=utcnow(), ttl=LEASE, limit=50)


class Recording:
    """Wraps group_commit.commit: the size of every group, and a row whose change always fails."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, failing: str | None = None) -> None:
        self.groups: list[int] = []
        self.failing = failing
        self.real = group_commit.commit
        self.entered, self.go_on = threading.Event(), threading.Event()
        self.go_on.set()
        monkeypatch.setattr(group_commit, "commit", self)

    def __call__(self, store: Store, changes: Sequence[group_commit.Change],
                 **kwargs: Any) -> list[group_commit.Result]:
        self.groups.append(len(changes))
        self.entered.set()
        assert self.go_on.wait(30)
        if any(change.job.id == self.failing for change in changes):
            raise RuntimeError("this row's change cannot be written")
        return self.real(store, changes, **kwargs)


async def test_changes_handed_over_during_a_commit_go_together_in_the_next(
        rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN six claimed rows
    vouch(rt)
    await collect_and_route(rt, *range(6))
    jobs = claimed(rt)
    recording = Recording(monkeypatch)
    recording.go_on.clear()
    committer = GroupCommitter(rt.store, owner="w1", now=utcnow())
    # WHEN one send starts, and five more start while its commit is under way
    first = committer.submit(Start(jobs[0]))
    assert await asyncio.to_thread(recording.entered.wait, 30)
    rest = [committer.submit(Start(job)) for job in jobs[1:]]
    recording.go_on.set()
    await committer.drained()
    # THEN two transactions carried them: the first alone, the other five together
    assert recording.groups == [1, 5]
    started = [first.result()] + [f.result() for f in rest]
    assert [job.attempts for job in started] == [1] * 6
    # AND each row's attempt is charged and its send marked as begun, as a single start would
    assert {state(rt, job.message_id).deliveries[0][1:] for job in jobs} == {("sending", 1)}


async def test_one_change_that_cannot_be_written_costs_the_others_nothing(
        rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN three rows whose sends started, and a fourth whose lease passed to another worker
    vouch(rt)
    await collect_and_route(rt, *range(4))
    jobs = claimed(rt)
    committer = GroupCommitter(rt.store, owner="w1", now=utcnow())
    started = [await committer.start(job) for job in jobs]
    assert all(job is not None for job in started)
    outbox.release(rt.store, jobs[3], owner="w1", at=utcnow() - LEASE)  # as if its lease ran out
    assert len(claimed(rt, "w2")) == 1
    # WHEN their accepted sends are recorded in one group, and one row's change fails
    recording = Recording(monkeypatch, failing=jobs[0].id)
    futures = [committer.submit(Delivered(job, "250 queued", f"<{job.id}@test>"))
               for job in started if job is not None]
    await committer.drained()
    # THEN the group was retried one by one: the failing row learns its error, the others are recorded
    assert recording.groups == [4, 1, 1, 1, 1]
    with pytest.raises(RuntimeError):
        futures[0].result()
    assert [f.result() for f in futures[1:]] == [True, True, False]
    assert state(rt, jobs[1].message_id).deliveries[0][1] == "delivered"
    assert state(rt, jobs[1].message_id).message == "delivered"
    assert "delivery_sent" in state(rt, jobs[2].message_id).kinds()
    # AND the row another worker holds is left to it
    assert state(rt, jobs[3].message_id).deliveries[0][1] == "sending"
    assert "delivery_sent" not in state(rt, jobs[3].message_id).kinds()
