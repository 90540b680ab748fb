"""E-mail letters read and encrypted in a compose worker process (delivery/compose_pool.py): what arrives
decrypts to the originals, the daemon's process never reads or encrypts them, and a lost or stuck worker
costs its chunk a retry, not the run."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from worker_testkit import (
    PDF,
    attachments,
    collect_and_route,
    decrypt_smime,
    deliver,
    delivery_toml,
    recipients_toml,
    state,
    vouch,
)

from delivery import prepare, worker
from delivery.channels import EmailChannel
from delivery.compose_pool import GONE, ComposePool, Made, Order, StoreAddress
from delivery.email_compose import EmailIdentity
from delivery.errors import EncryptionError
from delivery.outer import WireMessage
from delivery.recipients import RecipientsFile
from postbud.runtime import Runtime

if TYPE_CHECKING:
    from delivery_testkit import RunningSmtp, ServeFactory, SmimeRecipient

    from tests.conftest import MakeConfig

LATER = dt.timedelta(hours=2)  # past any back-off of these configs


@pytest.fixture
async def smtp(smtp_server: ServeFactory) -> RunningSmtp:
    return await smtp_server()


@pytest.fixture
async def rt(make_config: MakeConfig, smtp: RunningSmtp, smime_recipient: SmimeRecipient,
             tmp_path: Path) -> AsyncIterator[Runtime]:
    recipients = recipients_toml(tmp_path, smime_recipient)
    runtime = Runtime.create(make_config(extra=delivery_toml(smtp, recipients, extra="max_attempts = 3")))
    yield runtime
    await runtime.aclose()


@pytest.fixture
def pool(rt: Runtime) -> Iterator[ComposePool]:
    composer = ComposePool(StoreAddress(rt.config.database_url, rt.config.encryption.keyring))
    yield composer
    composer.close()


@pytest.fixture
def nothing_composed_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's process neither reads a letter's content nor composes one."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("read or composed in the daemon's process")

    monkeypatch.setattr(prepare, "read_contents", refuse)
    monkeypatch.setattr(EmailChannel, "compose", refuse)


def order_for(rt: Runtime, smime_recipient: SmimeRecipient, message_id: str, *, key: bytes | None = None) -> Order:
    assert isinstance(rt.recipients, RecipientsFile)
    recipient = rt.recipients.get("12345678", "reception")
    return Order(message_id, "tok" + message_id[:8], recipient, smime_recipient.cert_path.read_bytes()
                 if key is None else key)


IDENTITY = EmailIdentity("postbud@test.example", "test.example", "https://postbud.test.example")


async def test_letters_composed_in_a_worker_arrive_encrypted_and_decrypt_to_the_originals(
        rt: Runtime, pool: ComposePool, smtp: RunningSmtp, smime_recipient: SmimeRecipient, openssl: str,
        tmp_path: Path, nothing_composed_here: None) -> None:
    # GIVEN two routed letters to an approved S/MIME recipient, and a compose worker
    vouch(rt)
    ids = await collect_and_route(rt, 1, 2)
    # WHEN the outbox is delivered with it
    assert await deliver(rt, composer=pool) == 2
    # THEN both arrived encrypted, and the real openssl decrypts each to its original PDF
    assert [state(rt, mid).message for mid in ids] == ["delivered", "delivered"]
    received: dict[str, bytes] = {}
    for raw, _ in smtp.handler.messages:
        received.update(attachments(decrypt_smime(openssl, raw, smime_recipient, tmp_path)))
    assert (received["brev-1.pdf"], received["brev-2.pdf"]) == (PDF + b"1", PDF + b"2")
    assert all(b"application/pkcs7-mime" in raw and over_tls for raw, over_tls in smtp.handler.messages)
    assert pool.pids(), "the worker did the work"


async def test_the_worker_writes_no_core_file(rt: Runtime, pool: ComposePool, smime_recipient: SmimeRecipient) -> None:
    # GIVEN a worker that composed a letter (its plaintext was in that process's memory)
    vouch(rt)
    (mid,) = await collect_and_route(rt, 1)
    assert isinstance(pool.compose(IDENTITY, [order_for(rt, smime_recipient, mid)])[0], Made)
    # THEN a crash of it would leave no core file
    (pid,) = pool.pids()
    limits = Path(f"/proc/{pid}/limits").read_text()
    core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    assert core.split()[4:6] == ["0", "0"]


async def test_each_order_gets_its_own_outcome(rt: Runtime, pool: ComposePool,
                                               smime_recipient: SmimeRecipient) -> None:
    # GIVEN a letter, an order for it, one whose key is no certificate, and one for a letter that is gone
    vouch(rt)
    (mid,) = await collect_and_route(rt, 1)
    orders = [order_for(rt, smime_recipient, mid), order_for(rt, smime_recipient, mid, key=b"not a certificate"),
              order_for(rt, smime_recipient, "gone-0000")]
    # WHEN the worker composes them in one chunk
    made, refused, gone = pool.compose(IDENTITY, orders)
    # THEN the first is an encrypted wire message, the second the channel's refusal with its own
    # class (the recipient is held), the third the reason to hold it
    assert isinstance(made, Made) and isinstance(made.composed.data, WireMessage)
    assert b"smime.p7m" in made.composed.data and made.composed.to == "alice@example.com"
    assert isinstance(refused, EncryptionError) and "not a PEM certificate" in str(refused)
    assert gone == GONE


def worker_dies_on_first_chunk(pool: ComposePool, monkeypatch: pytest.MonkeyPatch) -> None:
    real_call = pool._call
    calls = 0

    def dying(handle: Any, identity: EmailIdentity, orders: list[Order]) -> tuple[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            handle.process.kill()
            handle.process.join(5)
        return real_call(handle, identity, orders)

    monkeypatch.setattr(pool, "_call", dying)


async def test_a_worker_lost_on_a_chunk_is_replaced_and_each_letter_composed_alone(
        rt: Runtime, pool: ComposePool, smtp: RunningSmtp, monkeypatch: pytest.MonkeyPatch,
        nothing_composed_here: None) -> None:
    # GIVEN two routed letters in one chunk, and a worker that dies on it
    vouch(rt)
    ids = await collect_and_route(rt, 1, 2)
    worker_dies_on_first_chunk(pool, monkeypatch)
    # WHEN the outbox is delivered
    assert await deliver(rt, composer=pool) == 2
    # THEN a new worker composed both, and both went out
    assert [state(rt, mid).message for mid in ids] == ["delivered", "delivered"]
    assert len(smtp.handler.messages) == 2


async def test_a_letter_its_worker_is_lost_on_alone_costs_an_attempt_not_the_run(
        rt: Runtime, pool: ComposePool, smtp: RunningSmtp, monkeypatch: pytest.MonkeyPatch,
        nothing_composed_here: None) -> None:
    # GIVEN two routed letters, one per chunk, and a worker that dies on the first
    vouch(rt)
    first, second = await collect_and_route(rt, 1, 2)
    monkeypatch.setattr(worker, "CHUNK", 1)
    worker_dies_on_first_chunk(pool, monkeypatch)
    # WHEN the outbox is delivered
    assert await deliver(rt, composer=pool) == 2
    # THEN the first letter waits for its retry, an attempt counted; a new worker composed the second
    assert state(rt, first).deliveries == [("reception", "pending", 1)]
    assert state(rt, second).message == "delivered"
    assert len(smtp.handler.messages) == 1
    # AND the retry goes out
    assert await deliver(rt, composer=pool, now=dt.datetime.now(dt.UTC) + LATER) == 1
    assert state(rt, first).message == "delivered"


async def test_an_overrunning_worker_is_replaced_and_its_letter_retried(
        rt: Runtime, pool: ComposePool, smime_recipient: SmimeRecipient) -> None:
    # GIVEN a worker that cannot answer in the time it has
    vouch(rt)
    (mid,) = await collect_and_route(rt, 1)
    pool.seconds = 0.0
    assert await deliver(rt, composer=pool) == 1
    assert state(rt, mid).deliveries == [("reception", "pending", 1)]
    # WHEN it has time again
    pool.seconds = 60.0
    # THEN a new worker composes the letter
    assert await deliver(rt, composer=pool, now=dt.datetime.now(dt.UTC) + LATER) == 1
    assert state(rt, mid).message == "delivered"
    assert len(pool.pids()) == 1
