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
