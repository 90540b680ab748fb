"""The state machine written in bulk: the same checks as one transition, the trace events in the order
they were made, read without loading the letters' content."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import col, select

from core.lifecycle import CURRENT, Current, IllegalTransition, event_row, insert_events, move, record, update_status
from core.storage.db import Store
from core.storage.models import Message, MessageStatus, TraceEvent, utcnow
from tests.conftest import MakeConfig
from tests.postbud.ops_testkit import Spec, add, store_for


@pytest.fixture
def store(make_config: MakeConfig) -> Iterator[Store]:
    store = store_for(make_config())
    yield store
    store.dispose()


def letters(store: Store, *statuses: str) -> list[str]:
    return [add(store, Spec(utcnow() - timedelta(hours=1), status=s)) for s in statuses]


def current(store: Store, ids: list[str]) -> list[Current]:
    with store.read() as session:
        return [Current(*row) for row in session.connection().execute(
            CURRENT.where(col(Message.id).in_(ids)).order_by(col(Message.id)))]


def kinds(store: Store, message_id: str) -> list[tuple[str, str | None, str | None]]:
    with store.read() as session:
        return [(e.kind, e.from_status, e.to_status) for e in session.exec(
            select(TraceEvent).where(TraceEvent.message_id == message_id).order_by(col(TraceEvent.id)))]


def test_update_status_moves_letters_read_as_their_columns(store: Store) -> None:
    # GIVEN two routed letters, read as their id, status and purge time alone
    ids = letters(store, "routed", "routed")
    # WHEN both move on in one transaction, their events written with another one made before
    with store.transaction() as session:
        record(session, ids[0], "note", actor="test")
        insert_events(session, update_status(session, current(store, ids), MessageStatus.DELIVERING,
                                             kind="delivering", actor="test", details=[{"n": 1}, {"n": 2}]))
    # THEN each is delivering, its trace in the order the events were made
    assert {c.status for c in current(store, ids)} == {"delivering"}
    assert kinds(store, ids[0])[-2:] == [("note", None, None), ("delivering", "routed", "delivering")]


def test_update_status_refuses_a_move_the_state_machine_does_not_allow(store: Store) -> None:
    # GIVEN a delivered letter and a routed one
    done, waiting = letters(store, "delivered", "routed")
    # WHEN both would be failed in one go
    with pytest.raises(IllegalTransition), store.transaction() as session:
        update_status(session, current(store, [waiting, done]), MessageStatus.FAILED, kind="failed", actor="test")
    # THEN neither moved
    assert sorted(c.status for c in current(store, [done, waiting])) == ["delivered", "routed"]


def test_move_keeps_the_callers_rows_up_to_date(store: Store) -> None:
    [letter] = letters(store, "routed")
    with store.transaction() as session:
        message = session.get(Message, letter)
        assert message is not None
        move(session, [message], MessageStatus.DELIVERING, kind="delivering", actor="test", reason="why")
        assert message.status == MessageStatus.DELIVERING
    with store.read() as session:
        stored = session.get(Message, letter)
        assert stored is not None and (stored.status, stored.status_reason) == ("delivering", "why")


def test_an_events_detail_is_stored_with_cpr_like_numbers_masked_in_every_string(store: Store) -> None:
    # GIVEN details quoting what a sender controls, one event each: a CPR number with and without its
    # dash, one in another script's digits (escaped when stored), a title with characters beyond
    # Latin-1 and a lone surrogate (an undecodable header byte), numbers that are not text, a CVR number
    # (eight digits: left as it is) and numbers right after an escaped character
    (message_id,) = letters(store, "collected")
    details = [{"title": "Brev til 010190-1234"}, {"files": [{"name": "0101901234.pdf"}]},
               {"note": "0\u06611\u0661\u0661\u0661-\u0661\u0661\u0661\u0661"}, {"dash": "Søren – 2013"},
               {"odd": "a\udcff"}, {"size": 1012345678, "score": 100.0},
               {"cvr": "29894027", "after_escape": "\u00f80101901234\n010190-1234"}]
    # WHEN their events are written
    with store.transaction() as session:
        insert_events(session, [event_row(message_id, "checked", actor="test", detail=d) for d in details])
    # THEN the numbers are masked in the strings, the rest is as it was
    with store.read() as session:
        stored = [e.detail for e in session.exec(
            select(TraceEvent).where(TraceEvent.kind == "checked").order_by(col(TraceEvent.id)))]
    assert stored == [{"title": "Brev til [cpr]"}, {"files": [{"name": "[cpr].pdf"}]}, {"note": "[cpr]"},
                      {"dash": "Søren – 2013"}, {"odd": "a\udcff"}, {"size": 1012345678, "score": 100.0},
                      {"cvr": "29894027", "after_escape": "\u00f8[cpr]\n[cpr]"}]
