"""`postbud status` and the facts behind it: mailboxes, rules and recipients in force (and refused
changes), outbox and queue backlog with the oldest age, the model per organisation, key warnings."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from core.storage.models import Mailbox
from postbud.cli.app import app
from postbud.runtime import Runtime
from postbud.status import service_status
from tests.conftest import MakeConfig
from tests.postbud.ops_testkit import Out, Spec, add

RECIPIENTS = """\
[org.12345678]
default_channel = "email"

[org.12345678.recipients.reception]
name = "Reception"
email = "reception@example.dk"
"""
RULE = '[[rule]]\nname = "vat"\nwhen.title.any = ["moms"]\nroute = ["reception"]\n'


@pytest.fixture
def runtime(make_config: MakeConfig, tmp_path: Path) -> Iterator[Runtime]:
    """A daemon's runtime that loaded rules and recipients; one message held, one waiting in the outbox."""
    (tmp_path / "recipients.toml").write_text(RECIPIENTS)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "a.toml").write_text(RULE)
    config = make_config(extra='[recipients]\nfile = "recipients.toml"\n[rules]\ndirectory = "rules"\n')
    rt = Runtime.create(config)
    yield rt
    rt.store.dispose()


def test_status_facts(runtime: Runtime, tmp_path: Path) -> None:
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    store = runtime.store
    add(store, Spec(now - timedelta(hours=3), status="held", decided_by="rule", action="hold"))
    add(store, Spec(now - timedelta(minutes=20), status="delivering", decided_by="rule",
                    outbox=[Out("reception", status="pending", after_seconds=None)]))
    with store.transaction() as session:
        drop = session.exec(select(Mailbox).where(Mailbox.name == "drop")).one()
        drop.last_error = "TransientError: provider answered 503"
        drop.consecutive_failures = 2
    rules_file = tmp_path / "rules" / "a.toml"
    rules_file.write_text(RULE.replace("route", "rout"))
    st = rules_file.stat()
    os.utime(rules_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert runtime.rule_source is not None
    runtime.rule_source.refresh()  # refused; the last good rules stay

    facts = service_status(runtime.config, store, now=now)
    drop_state = next(m for m in facts.mailboxes if m.mailbox == "12345678/drop")
    assert drop_state.status == "active" and drop_state.consecutive_failures == 2
    assert drop_state.last_error == "TransientError: provider answered 503"
    assert facts.rules.version is not None and facts.rules.active_since is not None
    assert facts.rules.refused_at is not None and facts.rules.refused and "a.toml" in facts.rules.refused
    assert facts.rules.problem is not None  # the files on disk do not load now
    assert facts.recipients.active_since is not None and facts.recipients.problem is None
    assert facts.backlog.outbox_waiting == {"email": 1} and facts.backlog.queue_held == 1
    assert facts.backlog.queue_oldest_age_seconds == pytest.approx(3 * 3600, abs=5)
    assert facts.backlog.outbox_oldest_age_seconds is not None
    (model,) = facts.models
    assert model.organisation == "12345678" and model.threshold is None
    assert model.no_automation is not None and "no model trained yet" in model.no_automation
    (key,) = facts.key_warnings  # reception has no key material
    assert (key.organisation, key.recipient) == ("12345678", "reception") and "no key" in key.problem


def test_status_command_text_and_json(runtime: Runtime) -> None:
    path = str(runtime.config.path)
    result = CliRunner().invoke(app, ["-c", path, "status"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    for expected in ("12345678/drop", "rules", "version", "active since", "outbox     0 waiting",
                     "queue      0 held", "no automation", "12345678/reception"):
        assert expected in text
    assert max(len(line) for line in text.splitlines() if "drop" in line) <= 80
    result = CliRunner().invoke(app, ["status", "--json", "-c", path])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"at", "mailboxes", "rules", "recipients", "backlog", "models", "key_warnings"}


def test_status_says_when_no_daemon_polls(runtime: Runtime) -> None:
    from datetime import datetime, timedelta, timezone

    with runtime.store.transaction() as session:
        drop = session.exec(select(Mailbox).where(Mailbox.name == "drop")).one()
        drop.next_poll_at = datetime.now(timezone.utc) - timedelta(hours=2)
    result = CliRunner().invoke(app, ["-c", str(runtime.config.path), "status"])
    assert "next poll overdue by 2.0h (is the daemon running?)" in result.stdout
