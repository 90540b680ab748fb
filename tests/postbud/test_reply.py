"""`postbud reply`: a MeMo with ReplyData, sent through the organisation's NgDP mailbox, traced."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from connectors.memo import parse_memo
from core import codec
from postbud.daemon import Daemon
from postbud.reply import ReplyRefused, send_reply
from postbud.runtime import Runtime
from sandbox.demo import start_sandbox
from core.storage.models import Attachment, Message
from postbud.trace import show
from tests.postbud.test_sandbox_run import example_config


def reply_allowed(runtime: Runtime, *, allowed: bool) -> Message:
    with runtime.store.read() as session:
        for row in session.exec(select(Message).where(Message.provider == "ngdp")):
            attachments = list(session.exec(select(Attachment).where(Attachment.message_id == row.id)))
            if codec.unseal(runtime.store.vault, row, attachments).flags.reply_allowed is allowed:
                return row
    raise AssertionError("no such message in the sandbox")


@pytest.mark.slow
async def test_reply_reaches_ngdp_and_is_traced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTBUD_DATABASE_URL", raising=False)
    config = example_config(tmp_path)
    config = config.model_copy(update={"sandbox": config.sandbox.model_copy(update={"messages_per_cvr": 12})})
    handle = await start_sandbox(config)
    runtime = Runtime.create(config)
    try:
        await Daemon(runtime).run_once()
        original = reply_allowed(runtime, allowed=True)
        answer = tmp_path / "svar.pdf"
        answer.write_bytes(b"%PDF-1.4 svar")
        sent = await send_reply(config, runtime.store, original.id, answer, text="Se vedlagte svar.", actor="mette")
        raw = handle.providers.endpoints["ngdp"].fake.sent[sent.reply_uuid]  # type: ignore[attr-defined]
        memo = parse_memo(raw)
        assert memo.replies[0].message_uuid == original.provider_message_id
        assert memo.recipient.id == original.sender_id and memo.sender.id == "12345678"
        assert memo.documents[0].files[0].content == b"%PDF-1.4 svar"
        timeline = show(runtime.store, original.id)
        assert timeline is not None and timeline["events"][-1]["kind"] == "replied"
        assert timeline["events"][-1]["actor"] == "mette"

        refused = reply_allowed(runtime, allowed=False)
        with pytest.raises(ReplyRefused, match="does not allow replies"):
            await send_reply(config, runtime.store, refused.id, answer, text=None, actor="mette")
    finally:
        await runtime.aclose()
        await handle.aclose()
