"""The held letters' schedule: its settings, and each stage told once, the latest due only."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from core.config import OrganisationConfig
from core.configfile import ConfigError, load_config
from core.storage.models import Notice, TraceEvent
from postbud.deadlines import run_schedule, stages
from tests.conftest import MakeConfig
from tests.postbud.ops_testkit import NOW, Spec, add, days_ago, store_for


def test_the_old_single_escalation_key_reads_as_the_first_reminder() -> None:
    org = OrganisationConfig.model_validate({"cvr": "12345678", "name": "A", "escalate_held_after_hours": 2})
    assert org.held_reminders_hours == (2.0,)
    assert [(s.name, s.after) for s in stages(org)] == [
        ("reminder-1", timedelta(hours=2)), ("escalation", timedelta(days=7)), ("final_warning", timedelta(days=83))]


def test_a_shorter_deadline_keeps_only_the_default_reminders_before_it() -> None:
    org = OrganisationConfig.model_validate({"cvr": "12345678", "name": "A", "decision_deadline_days": 3})
    assert org.held_reminders_hours == (24.0,)


def test_a_reminder_after_the_deadline_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "postbud.toml"
    path.write_text('[[organisations]]\ncvr = "12345678"\nname = "A"\nheld_reminders_hours = [24, 200]\n'
                    "decision_deadline_days = 7\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "held_reminders_hours must come before the decision deadline (168 h): 200" in str(caught.value)
    path.write_text('[[organisations]]\ncvr = "12345678"\nname = "A"\nretention_days = 5\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="final_warning_days must be shorter than retention_days"):
        load_config(path)


def test_only_the_latest_stage_due_is_told_and_each_only_once(make_config: MakeConfig) -> None:
    config = make_config(extra_org='administrators = ["admin@a.dk"]\nprocessors = ["post@a.dk"]')
    store = store_for(config)
    # GIVEN letters held 2 days (one reminder due), 6 days (the second), 8 days (past the deadline)
    two, six, eight = (add(store, Spec(days_ago(d), status="held")) for d in (2, 6, 8))

    # WHEN the schedule runs (a daemon back after a week away), and again an hour later
    told = run_schedule(store, config, NOW)
    again = run_schedule(store, config, NOW + timedelta(hours=1))

    # THEN each letter was told its latest stage once: no reminders for the escalated one
    assert told == {"12345678": {"reminder": 2, "escalation": 1}} and again == {}
    with store.read() as session:
        notices = list(session.exec(select(Notice)))
        events = list(session.exec(select(TraceEvent).where(col(TraceEvent.kind).in_(["reminded", "escalated"]))))
    by_letter = {e.message_id: (e.kind, e.detail["stage"]) for e in events}
    assert by_letter == {two: ("reminded", "reminder-1"), six: ("reminded", "reminder-2"),
                         eight: ("escalated", "escalation")}
    assert sorted((n.kind, n.recipients) for n in notices) == [
        ("escalation", ["post@a.dk", "admin@a.dk"]), ("reminder", ["post@a.dk"]), ("reminder", ["post@a.dk"])]


def test_two_instances_deciding_at_once_never_tell_a_letter_twice(make_config: MakeConfig) -> None:
    from core.notify import People
    from postbud.deadlines import _due, _tell

    config = make_config(extra_org='administrators = ["admin@a.dk"]')
    store = store_for(config)
    org = config.organisations[0]
    schedule = stages(org)
    people = People({org.cvr: org.administrators})
    # GIVEN instance A saw one letter due and instance B, a moment later, that one and a new one
    first = add(store, Spec(days_ago(2), status="held"))
    seen_by_a = _due(store, org, schedule, NOW)
    second = add(store, Spec(days_ago(2), status="held"))
    seen_by_b = _due(store, org, schedule, NOW)
    # WHEN both tell what they saw
    told_a = sum(_tell(store, org, people, schedule, s, letters, NOW) for s, letters in seen_by_a.items())
    told_b = sum(_tell(store, org, people, schedule, s, letters, NOW) for s, letters in seen_by_b.items())
    # THEN B told only the letter A had not: each letter has one reminder, in one notice each
    assert (told_a, told_b) == (1, 1)
    with store.read() as session:
        reminded = [str(e.message_id) for e in session.exec(select(TraceEvent).where(TraceEvent.kind == "reminded"))]
        notices = list(session.exec(select(Notice).order_by(col(Notice.created_at))))
    assert sorted(reminded) == sorted([first, second])
    assert [first in n.text for n in notices] == [True, False] and second in notices[1].text


def test_the_queue_shows_each_letters_decision_deadline_and_purge_day(make_config: MakeConfig) -> None:
    import json

    from typer.testing import CliRunner

    from postbud.cli.app import app

    config = make_config(extra_org="decision_deadline_days = 3\nretention_days = 30")
    assert config.path is not None
    received = NOW - timedelta(days=1)
    add(store_for(config), Spec(received, status="held"))
    result = CliRunner().invoke(app, ["-c", str(config.path), "queue", "list", "--json"])
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.stdout)
    assert item["decision_deadline"] == (received + timedelta(days=3)).isoformat()
    assert item["purge_at"] == (received + timedelta(days=30)).isoformat()
    table_view = CliRunner().invoke(app, ["-c", str(config.path), "queue", "list"])
    assert f"{received + timedelta(days=3):%Y-%m-%d}" in table_view.stdout  # whole, at 80 columns
