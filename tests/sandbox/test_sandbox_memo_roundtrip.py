"""Generated messages survive build_memo -> parse_memo in MeMo 1.1 and 1.2 with every field intact."""

from __future__ import annotations

import dataclasses

import pytest

from sandbox.generator import generate
from core.domain import MessageType


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_generated_mail_round_trips_through_memo(version: str) -> None:
    from connectors.memo import build_memo, parse_memo

    for message in generate("12345674", 120, seed=9):
        parsed = parse_memo(build_memo(message, version=version))
        assert parsed.format == f"memo-{version}"
        for field in dataclasses.fields(message):
            if field.name in ("format", "text"):
                continue  # format names the wire version; text is re-extracted from the PDF
            if field.name == "sent_at" and message.message_type is MessageType.NEMSMS:
                continue  # a NemSMS has no MessageBody, hence no createdDateTime
            assert getattr(parsed, field.name) == getattr(message, field.name), field.name
        if message.message_type is MessageType.DIGITALPOST:
            assert message.title.removeprefix("Videresendt: ") in parsed.text.replace("\n", " ")
