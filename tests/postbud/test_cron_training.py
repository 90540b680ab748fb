"""`run --once` trains when it is due (hourly, as the daemon) or when a person's new placements may
route held letters; otherwise a run ends without reading the model."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterator

import pytest

from collector.ledger import MailboxKey, sync_mailboxes
from postbud.cron_training import STAMP
from postbud.daemon import Daemon
from postbud.runtime import Runtime
from router.queue import assign, held
from tests.conftest import MakeConfig
from tests.router.promise_kit import ORG, collect, letter, place_by_hand, route_all

PROMISE_08 = "[model]\nmin_examples = 50\ntarget_precision = 0.8"


@pytest.fixture
def runtime(make_config: MakeConfig) -> Iterator[Runtime]:
    made = Runtime.create(make_config(extra_org="", extra=PROMISE_08))  # no default route: letters wait
    yield made
    made.store.dispose()


def run_once(runtime: Runtime) -> None:
    daemon = Daemon(runtime)

    async def no_delivery(*_: object) -> int:  # no outbox here: delivery is not what these tests are about
        return 0

    daemon.deliver = no_delivery  # type: ignore[method-assign]
    asyncio.run(daemon.run_once())


def trained_at(runtime: Runtime) -> float | None:
    path = runtime.models.path(ORG) if runtime.models else None
    return path.stat().st_mtime_ns if path is not None and path.exists() else None


def age_the_stamp(runtime: Runtime, seconds: float) -> None:
    stamp = runtime.config.model.folder / STAMP
    data = json.loads(stamp.read_text())
    stamp.write_text(json.dumps({**data, "at": data["at"] - seconds}))


def test_a_first_run_with_nothing_held_starts_the_clock_and_a_run_an_hour_later_trains(runtime: Runtime) -> None:
    # GIVEN 60 letters placed by a person, none held, and no training ever
    (mailbox,) = sync_mailboxes(runtime.store, runtime.config)
    place_by_hand(runtime, mailbox, 60)
    # WHEN postbud runs once, and again at once
    run_once(runtime)
    run_once(runtime)
    # THEN neither trained: a new model would have had no held letter to route
    assert trained_at(runtime) is None
    # WHEN a run comes [model] train_interval_seconds after the first
    age_the_stamp(runtime, runtime.config.model.train_interval_seconds)
    run_once(runtime)
    # THEN it trains, as the daemon does every hour
    assert trained_at(runtime) is not None


def hold_unseen_letters(runtime: Runtime, mailbox: MailboxKey, count: int) -> list[str]:
    rng = random.Random(5)
    for i in range(count):
        collect(runtime, mailbox, letter(3000 + i, "insurance", rng))  # a sender never seen: held
    route_all(runtime)
    return [item.id for item in held(runtime.store)]


def test_a_person_placing_letters_while_others_are_held_makes_the_next_run_train(runtime: Runtime) -> None:
    # GIVEN 100 letters placed by a person and 20 held; the first run trains (and re-offers them)
    (mailbox,) = sync_mailboxes(runtime.store, runtime.config)
    place_by_hand(runtime, mailbox, 120, leave=20)
    run_once(runtime)
    first = trained_at(runtime)
    assert first is not None
    # WHEN letters of an unseen kind are held and a run comes with nothing placed since
    waiting = hold_unseen_letters(runtime, mailbox, 3)
    assert waiting
    run_once(runtime)
    # THEN it does not train again
    assert trained_at(runtime) == first
    # WHEN a person places one of the held letters, and the next run comes
    assign(runtime.store, waiting[0], ["facilities"], actor="mette")
    time.sleep(0.01)  # a new file's time differs from the old one's
    run_once(runtime)
    # THEN that run trains
    assert trained_at(runtime) != first
