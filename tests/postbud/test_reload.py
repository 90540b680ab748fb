"""The recipients file is watched like the rules: a valid change is taken, a broken one (or one the rules
no longer check against) is refused and the last good file stays active; every (re)load is traced."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import col, select

from core.storage.models import TraceEvent
from postbud.runtime import Runtime
from tests.conftest import MakeConfig

RECIPIENTS = """\
[org.12345678]
default_channel = "email"

[org.12345678.recipients.reception]
name = "Reception"
email = "reception@example.dk"

[org.12345678.recipients.finance]
name = "Finance"
email = "finance@example.dk"
"""
RULE = '[[rule]]\nname = "vat"\nwhen.title.any = ["moms"]\nroute = ["finance"]\n'


def touch(path: Path, text: str) -> None:
    """Rewrite a file and move its mtime on, as an editor saving a second later would."""
    path.write_text(text, encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def runtime(make_config: MakeConfig, tmp_path: Path) -> Iterator[Runtime]:
    (tmp_path / "recipients.toml").write_text(RECIPIENTS)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "a.toml").write_text(RULE)
    config = make_config(extra='[recipients]\nfile = "recipients.toml"\n[rules]\ndirectory = "rules"\n'
                               '[model]\nenabled = false\n')
    rt = Runtime.create(config)
    yield rt
    rt.store.dispose()


def events(rt: Runtime) -> list[tuple[str, str | None]]:
    with rt.store.read() as session:
        rows = session.exec(select(TraceEvent).where(col(TraceEvent.message_id).is_(None))
                            .order_by(col(TraceEvent.id))).all()
    return [(e.kind, e.reason) for e in rows]


def test_a_valid_change_is_taken_without_a_signal(runtime: Runtime, tmp_path: Path) -> None:
    assert [k for k, _ in events(runtime)] == ["recipients_loaded", "rules_loaded"]
    touch(tmp_path / "recipients.toml", RECIPIENTS + '\n[org.12345678.recipients.legal]\nname = "Legal"\n'
                                                     'email = "legal@example.dk"\n')
    runtime.refresh_recipients()
    assert runtime.recipients is not None and "legal" in runtime.recipients.ids("12345678")
    # then the rules, checked against the new file
    assert [k for k, _ in events(runtime)][2:] == ["recipients_loaded", "rules_loaded"]
    runtime.refresh_recipients()  # unchanged: nothing happens
    assert len(events(runtime)) == 4


@pytest.mark.parametrize("change", [
    RECIPIENTS.replace('name = "Finance"', 'nmae = "Finance"'),  # broken
    RECIPIENTS.split("[org.12345678.recipients.finance]")[0],  # the rules route to finance
])
def test_a_bad_change_is_refused_and_the_last_good_file_stays(runtime: Runtime, tmp_path: Path,
                                                              change: str) -> None:
    active = runtime.recipients
    touch(tmp_path / "recipients.toml", change)
    runtime.refresh_recipients()
    assert runtime.recipients is active
    assert runtime.recipients is not None and "finance" in runtime.recipients.ids("12345678")
    kind, reason = events(runtime)[-1]
    assert kind == "recipients_refused" and reason is not None and "last good" in reason
    runtime.refresh_recipients()  # refused once per change
    assert len(events(runtime)) == 3
