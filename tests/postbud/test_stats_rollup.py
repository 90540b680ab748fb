"""The daily roll-up gives exactly the figures counted from the messages, through every way a letter
moves: collected, routed, held and placed, delivered by the outbox, failed, corrected, resent, erased,
expired by retention; before and after settling; and from a database that had letters before the
roll-up's migration."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy
from sqlalchemy import func
from sqlmodel import select

from core.config import Config
from core.domain import Party
from core.storage import daily_counts, migrate
from core.storage.daily_counts import DailyCount
from core.storage.db import Store
from delivery import group_commit, outbox
from postbud.erasure import erase
from postbud.retention import purge
from postbud.stats import recount, stats
from postbud.trace_actions import resend
from router.correction import correct
from router.queue import assign
from tests.conftest import MakeConfig
from tests.postbud.ops_testkit import ORG_A, ORG_B, SKAT, Out, Spec, add, store_for

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
SUBJECT = Party(id="11223344", id_type="CVR", name="Erased ApS")


def letters(store: Store, rng: random.Random, count: int) -> list[tuple[str, str]]:
    """`count` letters over 400 days, two organisations, every kind of decision and outcome: (id, status)."""
    made = []
    for i in range(count):
        status = rng.choice(["collected", "held", "routed", "delivered", "failed", "quarantined"])
        decided_by = None if status in ("collected", "quarantined") else rng.choice(
            ["rule", "model", "hand", "default"])
        outbox_rows = [Out(f"p{i % 3}", channel=rng.choice(["email", "webhook"]),
                           status={"delivered": "delivered", "failed": "failed"}.get(status, "pending"),
                           after_seconds=rng.uniform(10, 900) if status == "delivered" else None)
                       ] if decided_by and status != "held" else []
        made.append((add(store, Spec(NOW - timedelta(days=rng.uniform(0, 400)), org=rng.choice([ORG_A, ORG_B]),
                                     status=status, decided_by=decided_by,
                                     action="hold" if status == "held" else "route", outbox=outbox_rows,
                                     sender=SUBJECT if i % 17 == 0 else SKAT,
                                     quarantined=status == "quarantined")), status))
    return made


def assert_same(store: Store, now: datetime) -> None:
    """Every view, for one organisation, both and all, from the start and from a moment within a day."""
    for by in ("day", "month", "year"):
        for org in (ORG_A, (ORG_A, ORG_B), None):
            for since in (None, now - timedelta(days=45, hours=5)):
                fast = stats(store, org, by, now, since=since)
                slow = recount(store, org, by, now, since=since)
                assert fast == slow, (by, org, since)


def move_letters(config: Config, store: Store, made: list[tuple[str, str]]) -> None:
    """Each way the product moves a letter on, through its own code."""
    held = [m for m, s in made if s == "held"]
    routed = [m for m, s in made if s in ("routed", "delivered")]
    for message_id in held[:4]:
        assign(store, message_id, ["p1"], actor="tester")
    for message_id in routed[:4]:
        correct(store, message_id, ["p2"], actor="tester")
    now = datetime.now(timezone.utc)
    jobs = outbox.claim(store, "tester", now=now, ttl=timedelta(minutes=5), limit=12)
    started = group_commit.commit(store, [group_commit.Start(j) for j in jobs], owner="tester", now=now)
    sending = [job for job in started if isinstance(job, outbox.Job)]
    assert len(sending) == len(jobs) > 8
    group_commit.commit(store, [group_commit.Delivered(j, "250 ok", None) for j in sending[:8]], owner="tester",
                        now=now)
    for job in sending[8:]:
        outbox.mark_failed(store, job, "550 no", owner="tester")
    delivered = [m for m, s in made if s == "delivered"]
    resend(store, delivered[-1], actor="tester")
    resend(store, delivered[-2], actor="tester", to="p9", channel="webhook")
    assert erase(store, cvr=SUBJECT.id).messages > 0
    purge(store, config, NOW)  # 90 days' retention: unfinished letters older than that expire


@pytest.fixture
def config(make_config: MakeConfig) -> Config:
    return make_config()


def test_the_roll_up_equals_the_count_from_the_messages(config: Config) -> None:
    store = store_for(config)
    made = letters(store, random.Random(5), 80)
    assert_same(store, NOW)
    move_letters(config, store, made)
    unsettled = _rows(store)
    assert_same(store, NOW)
    assert daily_counts.settle(store, days_per_turn=7) == unsettled  # several turns
    assert _rows(store, settled=False) == 0 and _rows(store) < unsettled
    assert_same(store, NOW)
    assert_same(store, NOW + timedelta(days=3, hours=7))  # whole days that were "today" before
    # A period that reads only the roll-up is the same as one the messages were counted for.
    assert stats(store, ORG_A, "month", NOW, since=NOW - timedelta(days=60))[0].collected > 0


def test_a_database_with_letters_before_the_roll_up_gets_them_counted(config: Config) -> None:
    store = store_for(config)
    letters(store, random.Random(6), 40)
    expected = recount(store, None, "day", NOW)
    migrate_down_and_up(store)
    assert _rows(store, settled=False) == 0  # the migration counted them, settled
    assert stats(store, None, "day", NOW) == expected
    # and keeps counting after it
    add(store, Spec(NOW - timedelta(days=2), status="delivered", decided_by="rule", outbox=[Out("p1")]))
    assert stats(store, None, "day", NOW) == recount(store, None, "day", NOW) != expected


def migrate_down_and_up(store: Store) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    with store.engine.begin() as connection:
        cfg = migrate.alembic_config(store.engine)
        cfg.attributes["connection"] = connection
        roll_up = next(s for s in ScriptDirectory.from_config(cfg).walk_revisions()
                       if s.path.endswith("_daily_counts.py"))
        command.downgrade(cfg, str(roll_up.down_revision))
        columns = [c["name"] for c in sqlalchemy.inspect(connection).get_columns("message")]
        assert "routed_by" not in columns
    migrate.upgrade(store.engine)


def _rows(store: Store, *, settled: bool | None = None) -> int:
    query = select(func.count()).select_from(DailyCount)
    if settled is not None:
        query = query.where(DailyCount.settled == settled)
    with store.read() as session:
        return int(session.exec(query).one())
