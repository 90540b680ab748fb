"""Purged and erased letters are gone: out of the queue, its age metric and the waiting counts, and no
command acts on them (each refuses with one line saying why)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy
from sqlmodel import select

from core.config import Config
from core.storage import migrate
from core.storage.db import Store
from core.storage.models import Message
from postbud.erasure import erase
from postbud.retention import purge
from postbud.stats import stats
from postbud.trace import metrics_reading
from postbud.trace_actions import TraceActionError, download, resend
from router.queue import NotHeld, assign, held
from tests.conftest import MakeConfig
from tests.postbud.ops_testkit import NOW, Out, Spec, add, days_ago, store_for

CPR = "0101901234"


@pytest.fixture
def setup(make_config: MakeConfig) -> tuple[Config, Store]:
    config = make_config(extra_org='default_route = ["reception"]\nretention_days = 90')
    return config, store_for(config)


def status(store: Store, message_id: str) -> str:
    with store.read() as session:
        row = session.get(Message, message_id)
        assert row is not None
        return row.status


def test_a_purged_held_letter_leaves_the_queue_its_age_metric_and_the_counts(setup: tuple[Config, Store]) -> None:
    config, store = setup
    # GIVEN a held letter 91 days old, one a day old, and a delivered one 91 days old
    old = add(store, Spec(days_ago(91), status="held", decided_by="rule", action="hold"))
    young = add(store, Spec(days_ago(1), status="held", decided_by="rule", action="hold"))
    delivered = add(store, Spec(days_ago(91), status="delivered", decided_by="rule", outbox=[Out("a@firma.dk")]))

    # WHEN retention purges
    purge(store, config, NOW)

    # THEN the held one is expired, the delivered one keeps its outcome
    assert status(store, old) == "expired" and status(store, delivered) == "delivered"
    assert [m.id for m in held(store, now=NOW)] == [young]
    real_now = datetime.now(timezone.utc)
    reading = metrics_reading(store)
    assert reading.oldest_held_age < (real_now - days_ago(2)).total_seconds()  # the young one's age
    assert dict(reading.messages_by_status)["expired"] == 1
    periods = stats(store, None, "year", NOW)
    assert sum(p.held for p in periods) == 1

    # AND no command acts on it: one line each, saying why
    with pytest.raises(NotHeld, match=rf"^message {old} was purged by retention on 2026-06-01; its content is gone$"):
        assign(store, old, ["reception"], actor="ib")
    for action in (lambda: resend(store, old, actor="ib", to="x@firma.dk"),
                   lambda: resend(store, delivered, actor="ib"),
                   lambda: download(store, old, Path("/nonexistent"), actor="ib")):
        with pytest.raises(TraceActionError, match="was purged by retention on 2026-06-01") as caught:
            action()
        assert "\n" not in str(caught.value)


def test_the_queue_forgets_the_last_held_letter(setup: tuple[Config, Store]) -> None:
    config, store = setup
    add(store, Spec(days_ago(91), status="held"))
    purge(store, config, NOW)
    assert held(store) == [] and metrics_reading(store).oldest_held_age == 0.0


def test_an_erased_letter_is_gone_for_every_command(setup: tuple[Config, Store]) -> None:
    _, store = setup
    letter = add(store, Spec(days_ago(2), status="held", content_data={"cpr": CPR}))
    erase(store, cpr=CPR, now=NOW)
    assert status(store, letter) == "erased" and held(store) == []
    with pytest.raises(NotHeld, match="erased on a data subject's request"):
        assign(store, letter, ["reception"], actor="ib")
    with pytest.raises(TraceActionError, match="erased on a data subject's request"):
        resend(store, letter, actor="ib", to="x@firma.dk")


def test_migration_expires_letters_purged_before_it(tmp_path: Path) -> None:
    # GIVEN a database at 0004 holding a purged held letter (the old behaviour) and a live one
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate.upgrade(engine, "0004")
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO organisation (id, cvr, name) VALUES (1, '12345678', 'A')")
        connection.exec_driver_sql("INSERT INTO mailbox (id, organisation_id, name, provider, status, "
                                   "consecutive_failures) VALUES (1, 1, 'drop', 'folder', 'active', 0)")
        for mid, purged in (("a" * 32, "'2026-01-01 00:00:00'"), ("b" * 32, "NULL")):
            connection.exec_driver_sql(
                "INSERT INTO message (id, mailbox_id, organisation_cvr, provider, provider_message_id, status, "
                f"title, received_at, updated_at, purged_at) VALUES ('{mid}', 1, '12345678', 'folder', '{mid}', "
                f"'held', '', '2025-10-01 00:00:00', '2025-10-01 00:00:00', {purged})")
    # WHEN it is upgraded
    migrate.upgrade(engine)
    # THEN the purged one is expired, the live one still held
    with engine.connect() as connection:
        rows: dict[str, str] = dict(connection.exec_driver_sql("SELECT id, status FROM message").all())
    assert rows == {"a" * 32: "expired", "b" * 32: "held"}
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()


def test_a_letter_purged_while_waiting_for_delivery_expires_and_its_outbox_fails(setup: tuple[Config, Store]) -> None:
    config, store = setup
    waiting = add(store, Spec(days_ago(91), status="routed", decided_by="rule",
                              outbox=[Out("a@firma.dk", status="pending", after_seconds=None)]))
    purge(store, config, NOW + timedelta(seconds=1))
    assert status(store, waiting) == "expired"
    with store.read() as session:
        assert session.exec(select(Message.status).where(Message.id == waiting)).one() == "expired"
