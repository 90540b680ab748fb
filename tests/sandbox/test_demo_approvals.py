"""The sandbox's demo recipients: approved on the first start, and what an administrator did survives restarts."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from core.storage.models import RecipientApproval
from delivery.approval import revoke
from delivery.recipients import load_recipients
from postbud.runtime import open_store
from sandbox.demo import approve_demo_recipients, write_demo_recipients
from sandbox.mailserver import ensure_demo_recipient
from tests.conftest import MakeConfig


def _start(path: Path, keys_dir: Path, config, store) -> int:  # type: ignore[no-untyped-def]
    keys = ensure_demo_recipient(keys_dir)
    write_demo_recipients(path, ["12345678"], keys)
    return approve_demo_recipients(store, config, load_recipients(path))


def test_a_revoked_demo_recipient_stays_revoked_across_restarts(make_config: MakeConfig, tmp_path: Path) -> None:
    # GIVEN the sandbox's first start approved its demo recipients
    config = make_config()
    store = open_store(config)
    try:
        recipients = tmp_path / "sandbox" / "recipients.toml"
        assert _start(recipients, tmp_path / "keys", config, store) > 0
        # WHEN the administrator revokes one and edits the file, then the sandbox starts again
        revoke(store, "12345678", "finance", actor="admin")
        recipients.write_text(recipients.read_text().replace('name = "Lønafdelingen"', 'name = "Løn og HR"'))
        _start(recipients, tmp_path / "keys", config, store)
        # THEN the revocation and the edit stand
        with store.read() as session:
            rows = {r.recipient: r.status for r in session.exec(select(RecipientApproval))}
        assert rows["finance"] == "revoked"
        assert rows["payroll"] == "approved"
        assert 'name = "Løn og HR"' in recipients.read_text()
    finally:
        store.dispose()


def test_the_onboarding_demo_recipient_is_listed_without_a_key_and_invited_until_approved(
        make_config: MakeConfig, tmp_path: Path) -> None:
    import io

    from delivery.onboarding import Step, journeys
    from sandbox.demo_onboarding import ONBOARDING_ID, invite_onboarding_demo

    config = make_config()
    store = open_store(config)
    try:
        # GIVEN a demo file written before the onboarding demo existed
        recipients = tmp_path / "sandbox" / "recipients.toml"
        _start(recipients, tmp_path / "keys", config, store)
        old = recipients.read_text().split(f"\n[org.12345678.recipients.{ONBOARDING_ID}]")[0]
        recipients.write_text(old)
        # WHEN the sandbox starts again THEN the recipient is added once, with an address and no key
        _start(recipients, tmp_path / "keys", config, store)
        _start(recipients, tmp_path / "keys", config, store)
        assert recipients.read_text().count(f"[org.12345678.recipients.{ONBOARDING_ID}]") == 1
        directory = load_recipients(recipients)
        listed = directory.get("12345678", ONBOARDING_ID)
        assert listed.email and listed.key_path is None
        # AND each start invites them (no mail server here: the link is printed all the same)
        out = io.StringIO()
        invitation = invite_onboarding_demo(store, config, directory, out=out)
        assert invitation is not None and invitation.link in out.getvalue()
        assert journeys(store, directory)[("12345678", ONBOARDING_ID)].step is Step.INVITED
        # the demo's vouched recipients are not touched
        assert journeys(store, directory)[("12345678", "finance")].step is Step.APPROVED
    finally:
        store.dispose()


def test_the_demo_has_a_recipient_by_post_added_once_to_an_older_file(tmp_path: Path) -> None:
    keys = ensure_demo_recipient(tmp_path / "keys")
    fresh = tmp_path / "fresh" / "recipients.toml"
    write_demo_recipients(fresh, ["12345678"], keys)
    archive = load_recipients(fresh).get("12345678", "archive")
    assert archive.channel == "post" and archive.postal_address is not None and archive.email is not None
    # GIVEN a demo file written before the post recipient existed
    older = tmp_path / "older" / "recipients.toml"
    older.parent.mkdir()
    older.write_text(fresh.read_text(encoding="utf-8").split("\n[org.12345678.recipients.archive]")[0],
                     encoding="utf-8")
    assert "archive" not in load_recipients(older).ids("12345678")
    # WHEN the sandbox starts on it, THEN the post recipient is added
    write_demo_recipients(older, ["12345678"], keys)
    assert load_recipients(older).get("12345678", "archive").channel == "post"
    # AND once an administrator removed it, it stays removed
    older.write_text(older.read_text(encoding="utf-8").split("\n[org.12345678.recipients.archive]")[0],
                     encoding="utf-8")
    write_demo_recipients(older, ["12345678"], keys)
    assert "archive" not in load_recipients(older).ids("12345678")
