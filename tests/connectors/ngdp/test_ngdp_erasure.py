"""An erased letter that NgDP still holds is never collected again, and is deleted at NgDP."""

from __future__ import annotations

from ngdp_env import CVR, Ngdp
from sqlmodel import func, select

from collector.ledger import MailboxKey
from collector.poll import poll_mailbox
from core.metrics import Metrics
from core.storage.models import Message
from postbud.erasure import erase
from postbud.runtime import open_store
from sandbox.generator import generate
from tests.conftest import MakeConfig
from tests.postbud.ops_testkit import mailbox


async def test_an_erased_letter_is_not_collected_again_and_is_deleted_at_the_provider(
    ngdp: Ngdp, make_config: MakeConfig
) -> None:
    # GIVEN letters collected from NgDP and held, not yet acknowledged there (after_delivery policy)
    messages = generate(CVR, 6, seed=5)
    ngdp.fake.add_messages(messages)
    store = open_store(make_config())
    key = MailboxKey(mailbox(store, CVR, "digital-post", provider="ngdp"), CVR, "digital-post", "ngdp",
                     ack_after_delivery=True)
    connector = ngdp.connector()
    try:
        first = await poll_mailbox(store, key, connector, Metrics())
        assert first.collected == 6 and ngdp.fake.acknowledged() == set()
        with store.transaction() as session:
            for row in session.exec(select(Message)):
                row.status = "held"
                session.add(row)
        subject = messages[0].sender.id
        assert subject is not None
        about = {m.message_id.lower() for m in messages if m.sender.id == subject}

        # WHEN the letters about one company are erased
        receipt = erase(store, cvr=subject)

        # THEN the receipt says what happens at the provider
        assert receipt.messages == len(about)
        assert (receipt.provider_acknowledged, receipt.provider_acknowledged_at_next_poll) == (0, len(about))
        # AND the next poll collects nothing again: the tombstones know them; NgDP deletes them
        second = await poll_mailbox(store, key, connector, Metrics())
    finally:
        await connector.aclose()
    assert second.collected == 0
    with store.read() as session:
        assert session.exec(select(func.count()).select_from(Message)).one() == 6
        assert session.exec(select(func.count()).select_from(Message).where(Message.status == "erased")).one() \
            == len(about)
    assert ngdp.fake.acknowledged() == about  # only the erased ones; the rest wait for delivery
