"""One poll of one mailbox: page through the listing, persist each new message, then acknowledge it."""

from __future__ import annotations

import asyncio
import logging
import time

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from collector import ledger
from collector.ledger import MailboxKey
from connectors.base import Connector, MessageRef, PermanentError, TransientError
from core.logs import correlation_id
from core.metrics import Metrics
from core.storage.db import Store

log = logging.getLogger(__name__)

MAX_PAGES_PER_POLL = 10_000
sleep = asyncio.sleep  # the back-off's sleep; tests replace it to observe the waits
_BACKOFF = wait_exponential_jitter(multiplier=0.5, max=30.0, jitter=1.0)


class PollResult:
    def __init__(self) -> None:
        self.collected = 0
        self.quarantined = 0
        self.skipped = 0
        self.awaiting_delivery = 0


async def _retrying(call, *, attempts: int):  # type: ignore[no-untyped-def]
    """Transient errors are retried with exponential back-off and jitter, honouring Retry-After."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_attempt(attempts),
        wait=_wait,
        sleep=lambda seconds: sleep(seconds),
        reraise=True,
    ):
        with attempt:
            return await call()


def _wait(retry_state) -> float:  # type: ignore[no-untyped-def]
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    if isinstance(exc, TransientError) and exc.retry_after is not None:
        return min(exc.retry_after, 300.0)
    return float(_BACKOFF(retry_state))


async def poll_mailbox(
    store: Store, mailbox: MailboxKey, connector: Connector, metrics: Metrics, *, retries: int = 3
) -> PollResult:
    """Collect everything the mailbox lists. AuthError and exhausted TransientError propagate.

    The caller records the poll's success (with the lease release, in one transaction).
    """
    result = PollResult()
    started = time.monotonic()
    cursor = await asyncio.to_thread(ledger.load_cursor, store, mailbox)
    for _ in range(MAX_PAGES_PER_POLL):
        page = await _retrying(lambda: connector.list_new(cursor), attempts=retries)
        for ref in page.refs:
            await _collect_one(store, mailbox, connector, ref, metrics, result, retries)
        if page.cursor != cursor:
            cursor = page.cursor
            await asyncio.to_thread(ledger.save_cursor, store, mailbox, cursor)
        if not page.more:
            break
    metrics.poll_seconds.labels(mailbox.provider).observe(time.monotonic() - started)
    return result


async def _collect_one(
    store: Store,
    mailbox: MailboxKey,
    connector: Connector,
    ref: MessageRef,
    metrics: Metrics,
    result: PollResult,
    retries: int,
) -> None:
    known = await asyncio.to_thread(ledger.find, store, mailbox, ref.key)
    correlation_id.set(known.message_id if known else f"{mailbox.organisation_cvr}/{mailbox.name}:{ref.key[:24]}")
    if known is None:
        try:
            fetched = await _retrying(lambda: connector.fetch(ref), attempts=retries)
        except PermanentError as exc:
            log.warning("message quarantined mailbox=%s key=%s reason=%s", mailbox.name, ref.key, exc)
            known = await asyncio.to_thread(
                ledger.save_quarantined, store, mailbox, ref, str(exc), exc.raw
            )
            metrics.messages_quarantined.labels(mailbox.provider, "collect").inc()
            result.quarantined += 1
        else:
            known = await asyncio.to_thread(ledger.save_collected, store, mailbox, fetched)
            correlation_id.set(known.message_id)
            log.info("message collected id=%s mailbox=%s", known.message_id, mailbox.name)
            metrics.messages_collected.labels(mailbox.provider).inc()
            result.collected += 1
    else:
        result.skipped += 1
    # Only now, with the message committed (or, where the mailbox waits for it, delivered), may the
    # provider forget it; until then it is listed again at every poll. A message listed again after
    # its acknowledgement (a lost ack, or the same file dropped twice) is acknowledged again.
    if not known.may_acknowledge(mailbox):
        result.awaiting_delivery += 1
        return
    await _retrying(lambda: connector.acknowledge(ref), attempts=retries)
    if not known.acknowledged:
        await asyncio.to_thread(ledger.mark_acknowledged, store, known.message_id)

