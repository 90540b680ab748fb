"""Editing the recipients file in place: comments and layout kept, the result checked whole before it
replaces the file, the replacement atomic, and an edit based on a version that is gone refused."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from tomlkit.toml_document import TOMLDocument

from delivery.recipients import Channel, PostalAddress, load_recipients
from delivery.recipients_edit import (
    Fields,
    RecipientsEditError,
    RecipientsFileChanged,
    drop_group,
    drop_recipient,
    edit,
    put_group,
    put_recipient,
    snapshot,
)

ORG = "12345678"
FILE = f"""# Written by hand: who gets what.
[org.{ORG}]
default_channel = "email"

# the bookkeepers
[org.{ORG}.recipients.finance]
name = "Økonomi"   # as the letters address them
aliases = ["Bogholderiet"]
email = "finance@example.dk"
smime_cert = "keys/finance.pem"

# legal is leaving
[org.{ORG}.recipients.legal]
name = "Jura"
email = "legal@example.dk"

[org.{ORG}.groups]
board = ["finance", "legal"]   # the board's letters
"""


@pytest.fixture
def path(tmp_path: Path) -> Path:
    target = tmp_path / "recipients.toml"
    target.write_text(FILE, encoding="utf-8")
    target.chmod(0o640)
    return target


def test_changes_keep_comments_and_layout_and_load(path: Path) -> None:
    before = snapshot(path)
    archive = Fields(name="Arkivet", channel="post",
                     postal_address=PostalAddress(name="Arkivet", street="Vestergade 1", postcode="8000",
                                                  city="Aarhus C"))

    def change(doc: TOMLDocument) -> None:
        put_group(doc, ORG, "board", ["finance"])
        drop_recipient(doc, ORG, "legal")
        put_recipient(doc, ORG, "archive", archive, create=True, base=path.parent)
        put_recipient(doc, ORG, "finance", Fields(email="bogholderi@example.dk",
                                                  pgp_key=path.parent / "keys" / "finance.asc"),
                      create=False, base=path.parent)

    after = edit(path, change, expected=before.digest)
    text = path.read_text(encoding="utf-8")
    # THEN the hand-written comments stay, the removed recipient's own comment goes with it
    assert "# Written by hand: who gets what." in text and "# the bookkeepers" in text
    assert 'name = "Økonomi"   # as the letters address them' in text
    assert 'board = ["finance"]   # the board\'s letters' in text
    assert "legal" not in text
    # AND the key kind switched, written relative to the file's folder
    assert 'pgp_key = "keys/finance.asc"' in text and "smime_cert" not in text
    assert "[org.12345678.recipients.archive]" in text
    loaded = load_recipients(path)
    assert loaded.get(ORG, "archive").channel is Channel.POST
    assert loaded.get(ORG, "finance").email == "bogholderi@example.dk"
    assert loaded.groups(ORG) == {"board": ("finance",)}
    assert after.digest != before.digest and after.digest == snapshot(path).digest
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in path.parent.iterdir()) == [".recipients.toml.lock", "recipients.toml"]


def test_a_result_the_loader_refuses_is_not_written(path: Path) -> None:
    inode = path.stat().st_ino
    with pytest.raises(RecipientsEditError, match=r"recipients\.toml:\d+: .*postal_address.*nothing was written"):
        edit(path, lambda doc: put_recipient(doc, ORG, "post", Fields(name="Post", channel="post"),
                                             create=True, base=path.parent))
    assert path.read_text(encoding="utf-8") == FILE and path.stat().st_ino == inode
    assert not [p for p in path.parent.iterdir() if p.suffix == ".tmp"]


def test_a_check_that_refuses_leaves_the_file(path: Path) -> None:
    def refuse(_: object) -> None:
        raise RecipientsEditError("a rule routes to board and finance")

    with pytest.raises(RecipientsEditError, match="a rule routes to board and finance"):
        edit(path, lambda doc: put_group(doc, ORG, "board", ["legal"]), check=refuse)
    assert path.read_text(encoding="utf-8") == FILE


def test_an_edit_of_a_version_that_is_gone_is_refused(path: Path) -> None:
    shown = snapshot(path)
    # GIVEN someone edits the file by hand after the administrator's page was shown
    path.write_text(FILE.replace('"Jura"', '"Juridisk afdeling"'), encoding="utf-8")
    # WHEN the administrator's change, based on the old version, arrives
    with pytest.raises(RecipientsFileChanged, match="changed since you read it"):
        edit(path, lambda doc: drop_group(doc, ORG, "board"), expected=shown.digest)
    # THEN the hand edit stands
    assert '"Juridisk afdeling"' in path.read_text(encoding="utf-8")


def test_of_two_concurrent_edits_of_one_version_one_wins(path: Path) -> None:
    shown = snapshot(path).digest
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def editor(gid: str) -> None:
        start.wait()
        try:
            edit(path, lambda doc: put_group(doc, ORG, gid, ["finance"]), expected=shown)
            outcomes.append("written")
        except RecipientsFileChanged:
            outcomes.append("refused")

    threads = [threading.Thread(target=editor, args=(g,)) for g in ("one", "two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused", "written"]
    groups = load_recipients(path).groups(ORG)
    assert len(set(groups) & {"one", "two"}) == 1


def test_ids_and_members_are_checked_with_reasons(path: Path) -> None:
    cases = [
        (lambda doc: put_recipient(doc, ORG, "Bad Id", Fields(name="x"), create=True, base=path.parent), "cannot be a recipient id"),
        (lambda doc: put_recipient(doc, ORG, "finance", Fields(name="x"), create=True, base=path.parent), "already a recipient"),
        (lambda doc: put_recipient(doc, ORG, "nobody", Fields(name="x"), create=False, base=path.parent), "not a recipient"),
        (lambda doc: put_recipient(doc, ORG, "board", Fields(name="x"), create=True, base=path.parent), "is a group"),
        (lambda doc: put_group(doc, ORG, "team", ["finance", "ghost"]), "ghost is not a recipient"),
        (lambda doc: put_group(doc, ORG, "team", []), "at least one member"),
        (lambda doc: drop_group(doc, ORG, "nogroup"), "not a group"),
        (lambda doc: put_recipient(doc, "87654321", "x", Fields(name="x"), create=False, base=path.parent), "not in the recipients file"),
    ]
    for change, reason in cases:
        with pytest.raises(RecipientsEditError, match=reason):
            edit(path, change)
    assert path.read_text(encoding="utf-8") == FILE


def test_the_first_recipient_of_a_new_file_and_organisation(tmp_path: Path) -> None:
    path = tmp_path / "new" / "recipients.toml"
    edit(path, lambda doc: put_recipient(doc, ORG, "alice", Fields(name="Alice", email="alice@example.dk"),
                                         create=True, base=path.parent))
    assert load_recipients(path).get(ORG, "alice").name == "Alice"
    assert os.stat(path).st_mode & 0o777 == 0o644
