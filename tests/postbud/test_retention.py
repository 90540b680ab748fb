"""Retention purges exactly what is due (on a clock the test controls); erasure removes one data subject."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from prometheus_client import generate_latest
from sqlmodel import col, select

from core.config import Config
from core.domain import Attention, Party
from postbud.erasure import SubjectError, erase
from core.metrics import Metrics
from postbud.retention import purge, run_housekeeping
from core.storage.db import Store
from core.storage.models import Attachment, Delivery, Message, Notice, RoutingDecision, TraceEvent
from tests.conftest import MakeConfig
from tests.postbud.ops_testkit import NOW, ORG_A, ORG_B, Out, Spec, add, days_ago, store_for

CPR = "0101901234"


@pytest.fixture
def setup(make_config: MakeConfig) -> tuple[Config, Store]:
    config = make_config(extra_org='default_route = ["reception"]\nretention_days = 30')
    return config, store_for(config)


def message(store: Store, message_id: str) -> Message:
    with store.read() as session:
        row = session.get(Message, message_id)
        assert row is not None
        return row


def rows(store: Store, table: type, message_id: str) -> list:  # type: ignore[type-arg]
    with store.read() as session:
        return list(session.exec(select(table).where(table.message_id == message_id)))  # type: ignore[attr-defined]


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_purge_removes_exactly_what_is_due(setup: tuple[Config, Store]) -> None:
    config, store = setup
    # GIVEN organisation A keeping 30 days and B (not configured) the default 90
    old_a = add(store, Spec(days_ago(31), title="Gammel sag for Jens", decided_by="rule",
                            outbox=[Out("jens@firma.dk")]))
    young_a = add(store, Spec(days_ago(29), title="Ny sag", decided_by="rule", outbox=[Out("ib@firma.dk")]))
    old_b = add(store, Spec(days_ago(91), org=ORG_B, status="failed", decided_by="model",
                            outbox=[Out("x@b.dk", status="failed", after_seconds=None)]))
    young_b = add(store, Spec(days_ago(89), org=ORG_B))
    with store.transaction() as session:
        session.add(TraceEvent(message_id=None, at=days_ago(95), kind="purge_run", actor="retention"))
        session.add(TraceEvent(message_id=None, at=days_ago(400), kind="erased", actor="erase"))
    metrics = Metrics()

    # WHEN the purge runs at NOW
    report = purge(store, config, NOW, metrics=metrics, batch_size=1)

    # THEN only the two old messages lost their content, attachments, original and old trace
    for purged_id in (old_a, old_b):
        row = message(store, purged_id)
        assert row.content is None and row.raw is None and row.title == "" and row.sender_name is None
        assert row.purged_at == NOW
        assert rows(store, Attachment, purged_id) == []
        assert {d.recipient.startswith("purged:") and d.last_reply is None for d in rows(store, Delivery, purged_id)} == {True}
        assert [d.explanation for d in rows(store, RoutingDecision, purged_id)] == [{}]
        assert [e.kind for e in rows(store, TraceEvent, purged_id)] == ["purged"]
    assert message(store, old_b).status == "failed"  # dead letters follow the same clock, keep their state
    for kept_id in (young_a, young_b):
        row = message(store, kept_id)
        assert row.content is not None and row.raw is not None and row.purged_at is None
        assert len(rows(store, Attachment, kept_id)) == 1
        assert "collected" in [e.kind for e in rows(store, TraceEvent, kept_id)]
    totals = report.totals
    assert (totals.content, totals.attachment, totals.original, totals.trace_event) == (2, 2, 2, 5)
    assert report.system_trace_events == 1  # the 95-day-old summary; the erasure receipt is kept
    assert sample(metrics, "postbud_purged_total", kind="content") == 2
    assert sample(metrics, "postbud_purged_total", kind="trace_event") == 6
    assert sample(metrics, "postbud_purge_last_run_timestamp_seconds") == NOW.timestamp()

    # AND one summary event without personal data records the run
    with store.read() as session:
        runs = list(session.exec(select(TraceEvent).where(TraceEvent.kind == "purge_run")))
        kinds = set(session.exec(select(TraceEvent.kind).where(col(TraceEvent.message_id).is_(None))))
    assert len(runs) == 1 and runs[0].message_id is None and runs[0].at == NOW
    assert runs[0].detail["totals"]["content"] == 2
    assert "Jens" not in json.dumps(runs[0].detail) and "jens@" not in json.dumps(runs[0].detail)
    assert kinds == {"purge_run", "erased"}

    # AND a second run finds nothing left to do
    again = purge(store, config, NOW, metrics=metrics)
    assert (again.totals.content, again.totals.attachment, again.totals.trace_event) == (0, 0, 0)


def test_dry_run_reports_the_same_counts_and_changes_nothing(setup: tuple[Config, Store]) -> None:
    config, store = setup
    old = add(store, Spec(days_ago(40), decided_by="rule", outbox=[Out("a@firma.dk")]))
    add(store, Spec(days_ago(10)))

    dry = purge(store, config, NOW, dry_run=True)

    assert message(store, old).content is not None and message(store, old).purged_at is None
    with store.read() as session:
        assert session.exec(select(TraceEvent).where(TraceEvent.kind == "purge_run")).first() is None
    real = purge(store, config, NOW)
    assert dry.dry_run and not real.dry_run
    assert dry.totals == real.totals
    assert (real.totals.content, real.totals.attachment, real.totals.trace_event) == (1, 1, 3)


def notices(store: Store) -> list[Notice]:
    with store.read() as session:
        return list(session.exec(select(Notice).order_by(col(Notice.created_at))))


def test_held_letter_gets_its_final_warning_before_it_is_purged(make_config: MakeConfig) -> None:
    config = make_config(extra_org='administrators = ["admin@a.dk"]\nretention_days = 30')
    store = store_for(config)
    metrics = Metrics()
    # GIVEN a held letter 25 days into A's 30-day retention, escalated long ago at its deadline (the
    # old code's 24-hour escalation also recorded `escalated`, and the retention warning skipped it)
    held = add(store, Spec(days_ago(25), status="held", decided_by="rule", action="hold"))
    with store.transaction() as session:
        session.add(TraceEvent(message_id=held, at=days_ago(24), kind="escalated", actor="postbud"))

    # WHEN purging now: final warning (a week ahead of the purge), not purged
    report = purge(store, config, NOW, metrics=metrics)
    assert report.totals.escalated == 1 and report.told == {"final_warning": 1}
    assert message(store, held).purged_at is None
    (warning,) = notices(store)
    assert warning.kind == "final_warning" and warning.recipients == ["admin@a.dk"]
    assert held in warning.text and (days_ago(25) + timedelta(days=30)).strftime("%Y-%m-%d") in warning.text
    assert sample(metrics, "postbud_retention_escalations_total") == 1
    purge(store, config, NOW + timedelta(days=1))
    assert len(notices(store)) == 1  # once only

    # THEN six days later it is purged and expired, its warning still in its trace
    report = purge(store, config, NOW + timedelta(days=6))
    assert report.totals.content == 1 and len(notices(store)) == 1
    assert [e.kind for e in rows(store, TraceEvent, held)] == ["escalated", "purge_warned", "purged"]
    assert message(store, held).status == "expired"

    # AND a held letter already past retention gets its warning in the run that purges it
    late = add(store, Spec(days_ago(45), status="held"))
    purge(store, config, NOW)
    assert [n.kind for n in notices(store)] == ["final_warning", "final_warning"]
    assert late in notices(store)[-1].text
    assert [e.kind for e in rows(store, TraceEvent, late)][-2:] == ["purge_warned", "purged"]


def test_notices_name_letters_not_their_content(make_config: MakeConfig) -> None:
    config = make_config(extra_org='administrators = ["admin@a.dk"]\nretention_days = 30')
    store = store_for(config)
    held = add(store, Spec(days_ago(26), status="held", title="Fortrolig sag", text="Hemmeligt indhold"))
    purge(store, config, NOW)
    (notice,) = notices(store)
    with store.read() as session:
        (note,) = session.exec(select(TraceEvent).where(TraceEvent.kind == "notification")).all()
    assert note.detail["organisation"] == ORG_A and note.detail["to"] == ["admin@a.dk"]
    assert note.detail["notice"] == notice.id
    assert held in notice.text and "26.0 days" in notice.text
    assert "Fortrolig" not in notice.text + notice.subject and "Hemmeligt" not in notice.text
    assert "Skattestyrelsen" not in notice.text  # senders only when the organisation allows it


def test_housekeeping_purges_once_a_day(setup: tuple[Config, Store]) -> None:
    config, store = setup
    metrics = Metrics()
    add(store, Spec(days_ago(31)))
    first = run_housekeeping(store, config, metrics, NOW)
    assert first is not None and first.totals.content == 1
    assert run_housekeeping(store, config, Metrics(), NOW + timedelta(hours=3)) is None
    fresh = Metrics()
    assert run_housekeeping(store, config, fresh, NOW + timedelta(hours=23)) is None
    assert sample(fresh, "postbud_purge_last_run_timestamp_seconds") == NOW.timestamp()
    assert run_housekeeping(store, config, fresh, NOW + timedelta(hours=25)) is not None
    assert b"postbud_purge_last_run_timestamp_seconds" in generate_latest(fresh.registry)


def test_erase_by_cpr_removes_every_message_about_the_person(setup: tuple[Config, Store]) -> None:
    _, store = setup
    about = [
        add(store, Spec(days_ago(1), attention=Attention(person_id=CPR, person_name="Jens"), decided_by="rule",
                        outbox=[Out("jens@firma.dk")])),
        add(store, Spec(days_ago(2), content_data={"cpr": "010190-1234", "cpr_name": "Jens"})),
        add(store, Spec(days_ago(3), text="Vedrørende CPR 010190-1234, barsel.")),
        add(store, Spec(days_ago(4), recipient=Party(id=CPR, id_type="CPR", name="Jens"))),
        add(store, Spec(days_ago(5), quarantined=True, raw=b"<memo><cpr>0101901234</cpr>")),
    ]
    others = [
        add(store, Spec(days_ago(1), attention=Attention(person_id="0202901234"))),
        add(store, Spec(days_ago(1), text="Kundenummer 90101901234 is a longer number")),
        add(store, Spec(days_ago(1), quarantined=True, raw=b"<memo>no number</memo>")),
    ]
    metrics = Metrics()

    receipt = erase(store, cpr="010190-1234", now=NOW, metrics=metrics)

    assert receipt.subject_type == "cpr" and receipt.messages == 5
    assert receipt.attachments == 4 and receipt.deliveries == 1 and receipt.decisions == 1
    assert receipt.trace_events == 5 + 1 + 1  # collected ×5, routed, delivered
    assert receipt.message_id_hashes == tuple(sorted(hashlib.sha256(i.encode()).hexdigest() for i in about))
    with store.read() as session:
        left = set(session.exec(select(Message.id).where(Message.status != "erased")))
        tombstones = list(session.exec(select(Message).where(Message.status == "erased")))
        for table in (Attachment, Delivery, RoutingDecision, TraceEvent):
            assert not list(session.exec(select(table).where(col(table.message_id).in_(about))))  # type: ignore[attr-defined]
        (stored,) = session.exec(select(TraceEvent).where(TraceEvent.kind == "erased")).all()
    assert left == set(others)
    # the tombstones keep the provider's identity only, so the letters are never collected again
    assert {t.id for t in tombstones} == set(about)
    for t in tombstones:
        assert t.provider_message_id and t.mailbox_id and t.purged_at == NOW
        assert (t.content, t.raw, t.title, t.sender_id, t.sender_name, t.recipient_id) == (None, None, "", None, None, None)
    assert (receipt.provider_acknowledged, receipt.provider_acknowledged_at_next_poll) == (0, 5)
    assert stored.message_id is None and stored.detail["receipt_id"] == receipt.receipt_id
    assert CPR not in json.dumps(stored.detail) and "010190" not in json.dumps(stored.detail)
    assert sample(metrics, "postbud_erased_messages_total") == 5


def test_erase_by_cvr_and_subject_validation(setup: tuple[Config, Store]) -> None:
    _, store = setup
    company = "11223344"
    hit = add(store, Spec(days_ago(1), sender=Party(id=company, id_type="CVR", name="Leverandør A/S")))
    hit2 = add(store, Spec(days_ago(1), content_data={"cvr": company}))
    miss = add(store, Spec(days_ago(1), text=f"Brevpapir med CVR {company}"))  # mentioned, not about it

    receipt = erase(store, cvr=company)

    assert receipt.messages == 2 and receipt.unreadable == 0
    with store.read() as session:
        assert set(session.exec(select(Message.id).where(Message.status != "erased"))) == {miss}

    # a message whose content cannot be decrypted is reported, and does not stop the erasure
    broken = add(store, Spec(days_ago(1), content_data={"cvr": company}))
    with store.transaction() as session:
        row = session.get(Message, broken)
        assert row is not None and row.content is not None
        row.content = row.content[:-1] + bytes([row.content[-1] ^ 1])
    again = erase(store, cvr=company)
    assert (again.messages, again.unreadable) == (0, 1)
    assert hit and hit2
    for bad in ({"cpr": "123"}, {"cvr": "1234567"}, {}, {"cpr": CPR, "cvr": company}):
        with pytest.raises(SubjectError):
            erase(store, **bad)
