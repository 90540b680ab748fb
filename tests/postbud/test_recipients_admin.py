"""`postbud recipients add|set|remove|group`: the recipients file changed without editing TOML, checked
as the daemon checks it, taken up by the running daemon; removing someone letters wait for is refused
unless they are held for a person, and a member of a group or a name a rule routes to is refused."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlmodel import col, select

from core.storage.models import Delivery, Message, RecipientApproval, TraceEvent
from delivery.recipients import Channel, RecipientsFile
from postbud.cli import invoke
from postbud.daemon import Daemon
from postbud.runtime import Runtime
from tests.conftest import MakeConfig

ORG = "12345678"
RECIPIENTS = f"""# The test organisation's people (kept by hand until now).
[org.{ORG}]
default_channel = "email"

[org.{ORG}.recipients.reception]
name = "Reception"
email = "reception@example.dk"

# Alice reads the tax letters
[org.{ORG}.recipients.alice]
name = "Alice Jensen"
email = "alice@example.dk"

[org.{ORG}.recipients.bob]
name = "Bob Hansen"
email = "bob@example.dk"

[org.{ORG}.groups]
board = ["reception", "bob"]
"""
RULE = """[[rule]]
name = "the auditor's letters to Bob"
when.sender.name.fuzzy = { to = ["Revisor"], min_score = 95 }
route = ["bob"]
"""


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: what is tested here is the file, not the database."""
    return f"sqlite:///{tmp_path / 'var' / 'postbud.db'}"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "recipients.toml").write_text(RECIPIENTS, encoding="utf-8")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "routing.toml").write_text(RULE, encoding="utf-8")
    return tmp_path


def settings(folder: Path) -> str:
    return f'[recipients]\nfile = "{folder / "recipients.toml"}"\n[rules]\ndirectory = "{folder / "rules"}"\n'


@pytest.fixture
def rt(make_config: MakeConfig, folder: Path) -> Iterator[Runtime]:
    runtime = Runtime.create(make_config(extra_org='default_route = ["reception", "alice"]', extra=settings(folder)))
    with runtime.store.transaction() as session:  # approved (the approval workflow is tested on its own)
        for rid in ("reception", "alice"):
            session.add(RecipientApproval(organisation_cvr=ORG, recipient=rid, status="approved",
                                          email=f"{rid}@example.dk"))
    yield runtime
    import asyncio

    asyncio.run(runtime.aclose())


def postbud(rt: Runtime, *args: str) -> int:
    return invoke(["-c", str(rt.config.path), "recipients", *args])


def events(rt: Runtime, kind: str) -> list[TraceEvent]:
    with rt.store.read() as session:
        return list(session.exec(select(TraceEvent).where(TraceEvent.kind == kind).order_by(col(TraceEvent.id))))


async def route_one(rt: Runtime) -> str:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "Skattestyrelsen <noreply@skat.dk>", "post@test.dk", "Moms"
    mail["Message-ID"] = "<moms-1@skat.dk>"
    mail.set_content("Se brevet.")
    drop = rt.config.base_dir / "drop"
    drop.mkdir(exist_ok=True)
    (drop / "letter.eml").write_bytes(mail.as_bytes())
    await rt.dispatcher.run_all_once()
    await Daemon(rt).route()
    with rt.store.read() as session:
        return session.exec(select(Message.id)).one()


def test_add_set_and_group_keep_the_file_and_reach_the_running_daemon(rt: Runtime, folder: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = folder / "recipients.toml"
    # WHEN an administrator adds a recipient by post and puts them in a group, without editing TOML
    assert postbud(rt, "add", ORG, "archive", "--name", "Arkivet", "--alias", "Arkiv", "--channel", "post",
                   "--postal-name", "Test ApS, Arkivet", "--street", "Vestergade 1", "--postcode", "8000",
                   "--city", "Aarhus C") == 0
    assert "recipient archive of 12345678 added" in capsys.readouterr().out
    assert postbud(rt, "group", "add", ORG, "board", "Arkivet") == 0
    assert postbud(rt, "set", ORG, "Alice Jensen", "--email", "alice.jensen@example.dk", "--never-alone") == 0
    # THEN the file keeps what was written by hand, and holds the changes
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# The test organisation's people") and "# Alice reads the tax letters" in text
    assert 'board = ["reception", "bob", "archive"]' in text
    # AND the running daemon takes the new file up by itself (as it does a hand edit)
    rt.refresh_recipients()
    assert isinstance(rt.recipients, RecipientsFile)
    assert rt.recipients.get(ORG, "archive").channel is Channel.POST
    assert rt.recipients.get(ORG, "archive").postal_address is not None
    assert rt.recipients.get(ORG, "alice").email == "alice.jensen@example.dk"
    assert rt.recipients.get(ORG, "alice").route_alone is False
    assert rt.recipients.groups(ORG)["board"] == ("reception", "bob", "archive")
    # AND each change is in the trace with who made it
    changes = events(rt, "recipients_changed")
    assert [e.detail["action"] for e in changes] == ["recipient_added", "group_set", "recipient_changed"]
    assert all(e.actor for e in changes)
    # WHEN a setting is cleared and a member taken out of a group
    assert postbud(rt, "set", ORG, "archive", "--clear", "channel", "--clear", "postal_address",
                   "--email", "arkiv@example.dk") == 0
    assert postbud(rt, "group", "remove", ORG, "board", "archive") == 0
    rt.refresh_recipients()
    assert rt.recipients.get(ORG, "archive").channel is None
    assert rt.recipients.groups(ORG)["board"] == ("reception", "bob")


def test_a_change_the_daemon_would_refuse_is_refused_and_writes_nothing(rt: Runtime, folder: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = folder / "recipients.toml"
    refusals = [
        (("add", ORG, "archive", "--name", "Arkivet", "--channel", "post"), "needs a postal_address"),
        (("remove", ORG, "bob"), "member of group board"),
        (("group", "remove", ORG, "board", "bob"), None),  # allowed; then bob is in no group ...
        (("remove", ORG, "bob"), "rules would no longer check"),  # ... but a rule routes to him
        (("remove", ORG, "alice"), "default_route names alice"),
        (("add", ORG, "alice", "--name", "Alice"), "already a recipient"),
        (("set", ORG, "nobody", "--name", "x"), "names no one recipient"),
        (("add", "99999999", "x", "--name", "x"), "not in the configuration"),
        (("group", "set", ORG, "team", "ghost"), "names no one recipient"),
    ]
    for args, reason in refusals:
        capsys.readouterr()
        before = path.read_bytes()
        code = postbud(rt, *args)
        err = capsys.readouterr().err
        if reason is None:
            assert code == 0, err
            continue
        assert code == 1, (args, err)
        assert reason in err and err.count("\n") == 1 and "Traceback" not in err, err
        assert path.read_bytes() == before
    # a value in the wrong form is a usage error
    for args in (("add", ORG, "x", "--name", "X", "--channel", "fax"), ("add", ORG, "x", "--name", "X",
                                                                          "--email", "not-an-address"),
                 ("set", ORG, "alice", "--clear", "name"), ("add", ORG, "x", "--name", "X", "--postcode", "8000")):
        assert postbud(rt, *args) == 2, args


def test_an_edit_of_a_version_someone_changed_since_is_refused(rt: Runtime, folder: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert postbud(rt, "show-version") == 0
    version = capsys.readouterr().out.strip()
    path = folder / "recipients.toml"
    path.write_text(path.read_text(encoding="utf-8").replace('"Bob Hansen"', '"Bob H."'), encoding="utf-8")
    assert postbud(rt, "set", ORG, "bob", "--email", "b@example.dk", "--if-version", version) == 1
    assert "changed since you read it" in capsys.readouterr().err
    assert 'email = "bob@example.dk"' in path.read_text(encoding="utf-8")


async def test_removing_a_recipient_letters_wait_for_is_refused_unless_they_are_held(
        rt: Runtime, make_config: MakeConfig, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a letter routed to reception and alice, waiting in the outbox
    mid = await route_one(rt)
    # AND alice is no longer the organisation's fallback
    make_config(extra_org='default_route = ["reception"]', extra=settings(folder))
    # WHEN the administrator removes alice
    assert postbud(rt, "remove", ORG, "alice") == 1
    # THEN it is refused with the reason, and nothing changed
    assert "1 letter is waiting in the outbox for alice" in capsys.readouterr().err
    assert "[org.12345678.recipients.alice]" in (folder / "recipients.toml").read_text(encoding="utf-8")
    # WHEN they ask for the waiting letters to be held
    assert postbud(rt, "remove", ORG, "alice", "--hold-waiting") == 0
    assert "1 waiting letters held" in capsys.readouterr().out
    # THEN alice is gone from the file with her comment, her letter waits for a person, her approval is revoked
    text = (folder / "recipients.toml").read_text(encoding="utf-8")
    assert "alice" not in text and "Alice reads" not in text
    with rt.store.read() as session:
        message = session.get(Message, mid)
        assert message is not None and message.status == "held"
        rows = {d.recipient: d.status for d in session.exec(select(Delivery).where(Delivery.message_id == mid))}
        approval = session.exec(select(RecipientApproval).where(RecipientApproval.recipient == "alice")).one()
    assert rows == {"reception": "pending", "alice": "held"}
    assert approval.status == "revoked"
    held = [e for e in events(rt, "held") if e.message_id == mid]
    assert held and "removed from the recipients file" in (held[-1].reason or "")
    assert events(rt, "recipients_changed")[-1].detail["held"] == [mid]
