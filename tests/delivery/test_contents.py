"""A delivery run reads each letter's content once, by its sealed columns: the same letter as the
stored rows unseal to, and nothing for a letter whose content is gone."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select, update

from core import codec
from core.storage.db import Store
from core.storage.models import Attachment, Message, utcnow
from delivery.contents import read_contents
from tests.postbud.ops_testkit import Spec, add


def test_contents_are_the_letters_as_stored(store: Store) -> None:
    # GIVEN a letter with two files, one without any, and one whose content retention purged
    at = utcnow() - timedelta(hours=2)
    two = add(store, Spec(at, files=(("brev.pdf", b"%PDF-1 brev"), ("bilag.pdf", b"%PDF-1 bilag")), text="To filer."))
    none = add(store, Spec(at + timedelta(minutes=1), files=()))
    purged = add(store, Spec(at + timedelta(minutes=2)))
    with store.transaction() as session:
        session.execute(update(Message).where(col(Message.id) == purged).values(content=None, purged_at=utcnow()))
    # WHEN a run reads them, and a letter that is not there at all
    found = read_contents(store, [two, none, purged, "missing"])
    # THEN each stored letter is what its rows unseal to, with its received time; the others are None
    with store.read() as session:
        for message_id in (two, none):
            row = session.get(Message, message_id)
            assert row is not None
            files = list(session.exec(select(Attachment).where(Attachment.message_id == message_id)))
            assert found[message_id] == (codec.unseal(store.vault, row, files), row.received_at)
    content = found[two]
    assert content is not None and [f.content for d in content[0].documents for f in d.files] == [
        b"%PDF-1 brev", b"%PDF-1 bilag"]
    assert found[purged] is None and found["missing"] is None
