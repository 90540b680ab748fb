"""One poll of one mailbox: page through the listing, persist each new message, then acknowledge it.

A poll is bounded: it spends at most `budget` requests at the provider (every attempt counts) and
then ends, saying whether work is left. Transient failures are retried per request, inside the poll,
honouring Retry-After; a request that still fails costs only its own message (it is retried at the
next poll), never the rest of the listing.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from functools import partial
from typing import TypeVar

from collector import ledger
from collector.addressing import place
from collector.ledger import Known, MailboxKey
from collector.poll_result import BudgetSpent, PollResult
from collector.storing import Collect, Outcome, Quarantine, save_group
from connectors.base import Connector, ConnectorError, Fetched, MessageRef, Page, PermanentError, TransientError
from core.logs import correlation_id
from core.metrics import Metrics
from core.storage.db import Store

log = logging.getLogger(__name__)

MAX_PAGES_PER_POLL = 10_000
# Letters stored per transaction; a group that waited this long for a slow fetch is stored without it.
GROUP_SIZE = 50
GROUP_WAIT = 0.2
# A Retry-After longer than this is not waited out inside the poll: the poll ends, and the
# dispatcher schedules the mailbox's next attempt no earlier than the provider asked.
MAX_WAIT_IN_POLL = 60.0
BACKOFF_MAX = 30.0
sleep = asyncio.sleep  # the back-off's sleep; tests replace it to observe the waits
T = TypeVar("T")


class _Unexpected(Exception):
    """A fetch failed in a way its connector did not type: this one letter is quarantined, not the mailbox jammed."""


async def _fetch(connector: Connector, ref: MessageRef) -> Fetched:
    try:
        return await connector.fetch(ref)
    except (ConnectorError, asyncio.CancelledError):
        raise
    except Exception as error:  # noqa: BLE001 - typed here; the letter is quarantined with the reason
        log.exception("fetch raised an untyped error")
        raise _Unexpected(f"the connector failed on this message: {type(error).__name__}: {error}"[:300]) from None


async def _retrying(call: Callable[[], Awaitable[T]], *, attempts: int, result: PollResult) -> T:
    """Transient errors are retried with exponential back-off and jitter, honouring Retry-After; a
    provider that asks for a longer wait than a poll should take ends the retries at once."""
    attempt = 1
    while True:
        result.spend()
        try:
            return await call()
        except TransientError as exc:
            if attempt >= attempts or (exc.retry_after or 0.0) > MAX_WAIT_IN_POLL:
                raise
            await sleep(exc.retry_after if exc.retry_after is not None else _backoff(attempt))
            attempt += 1


def _backoff(attempt: int) -> float:
    """The wait after failed attempt number `attempt` (1, 2, ...): 0.5 s doubling, up to 1 s jitter, 30 s at most."""
    return min(BACKOFF_MAX, 0.5 * 2.0 ** (attempt - 1) + random.uniform(0.0, 1.0))


def _note_wait(result: PollResult, exc: TransientError) -> None:
    if exc.retry_after is not None:
        result.retry_after = max(result.retry_after or 0.0, exc.retry_after)


async def poll_mailbox(
    store: Store, mailbox: MailboxKey, connector: Connector, metrics: Metrics, *, retries: int = 3,
    budget: int = 1000, organisations: Collection[str] = (),
) -> PollResult:
    """Collect what the mailbox lists, within `budget` requests. AuthError propagates, and so does a
    TransientError of the first listing request (nothing could be done); later failures end the poll
    early with its progress kept (`result.failed`, the cursor saved).

    A poll that resumed mid-list from a saved cursor goes round once more from the start, up to where
    it began, so messages listed early are acknowledged without waiting for the listing to wrap; a
    poll from the start that acknowledged something goes round once more too, since the listing
    moved under it.
    A message addressed to another CVR than the mailbox's organisation is held for that organisation
    when it is among `organisations`, else quarantined and left at the provider (collector.addressing).
    The caller records the poll's success (with the lease release, in one transaction).
    """
    result = PollResult(budget)
    started = time.monotonic()
    start = await asyncio.to_thread(ledger.load_cursor, store, mailbox)
    cursor, wrapped = start, False
    try:
        await _reconcile_acks(store, mailbox, connector, result, retries)
        acknowledged_before = result.acknowledged
        for _ in range(MAX_PAGES_PER_POLL):
            page = await _list(connector, cursor, retries, result)
            if page is None:
                break
            await _collect_page(store, mailbox, connector, page.refs, metrics, result, retries, organisations)
            if page.cursor != cursor:
                cursor = page.cursor
                await asyncio.to_thread(ledger.save_cursor, store, mailbox, cursor)
            if not page.more:
                # Round once more from the start: up to where a resumed poll began; or, when this
                # pass acknowledged something, over a listing that moved under it (an offset or page
                # listing shifts when messages leave it, so some were passed over).
                if wrapped or (start is None and result.acknowledged == acknowledged_before):
                    break
                cursor, wrapped = None, True
            elif wrapped and start is not None and page.cursor == start:
                break  # back where this poll began: the rest was read above
    except BudgetSpent:
        result.more = True
        log.info("poll used its budget of %d requests; it resumes at the next poll", budget)
    metrics.poll_seconds.labels(mailbox.provider).observe(time.monotonic() - started)
    metrics.poll_requests.labels(mailbox.provider).observe(result.requests)
    return result


class _Known:
    """A listed letter stored before (by an earlier poll, or earlier in this page): acknowledged only."""


_KNOWN = _Known()
_Item = Outcome | _Known | None  # None: its fetch failed, retried at the next poll


class _Page:
    """A page's letters on their way: a group waiting for its commit, then committed and acknowledged."""

    def __init__(self, store: Store, mailbox: MailboxKey, connector: Connector, metrics: Metrics,
                 result: PollResult, retries: int, known: dict[str, Known]) -> None:
        self.store, self.mailbox, self.connector, self.metrics = store, mailbox, connector, metrics
        self.result, self.retries, self.known = result, retries, known
        self.group: list[tuple[MessageRef, _Item]] = []
        self.started = 0.0
        # Acknowledged at the provider, not yet recorded: recorded with the next group's commit, or by
        # `record_acknowledged` when the page ends (a crash before either is reconciled at the restart).
        self.unrecorded: list[str] = []

    def add(self, ref: MessageRef, item: _Item) -> None:
        if not self.group:
            self.started = time.monotonic()
        self.group.append((ref, item))
        if item is _KNOWN:
            self.result.skipped += 1

    def full(self) -> bool:
        return len(self.group) >= GROUP_SIZE

    def wait_left(self) -> float:
        """How much longer the group may wait for the next letter before it is committed without it."""
        return max(0.0, self.started + GROUP_WAIT - time.monotonic())

    async def commit(self) -> None:
        """Store the group in one transaction (with the intents of letters stored before that may now be
        acknowledged, and the record of those acknowledged since the last commit), then acknowledge it
        at the provider."""
        group, self.group = self.group, []
        new = [(ref, item) for ref, item in group if isinstance(item, Collect | Quarantine)]
        intents = []
        for ref, item in group:
            known = self.known.get(ref.key)
            if item is _KNOWN and known is not None and not known.acknowledged and known.may_acknowledge(self.mailbox):
                intents.append((known.message_id, ref))  # the intent first: a crash after the provider acted is reconciled
        if new or intents:
            acknowledged = tuple(self.unrecorded)
            stored = await asyncio.to_thread(save_group, self.store, self.mailbox, [o for _, o in new], intents,
                                             acknowledged)
            del self.unrecorded[:len(acknowledged)]
            collected = held = 0
            for (ref, outcome), known in zip(new, stored, strict=True):
                self.known[ref.key] = known
                if isinstance(outcome, Collect):
                    collected += 1
                    held += outcome.held is not None
                    if log.isEnabledFor(logging.DEBUG):
                        correlation_id.set(known.message_id)
                        log.debug("message collected id=%s mailbox=%s%s", known.message_id, self.mailbox.name,
                                  f" ({outcome.held})" if outcome.held else "")
            self._count(collected, len(new) - collected)
            if collected:
                # One line per stored group (each letter's id is in the trace, and in the log at DEBUG).
                correlation_id.set(f"{self.mailbox.organisation_cvr}/{self.mailbox.name}")
                log.info("%d messages collected mailbox=%s%s", collected, self.mailbox.name,
                         f" ({held} held for a person)" if held else "")
        await self._acknowledge(group)

    def _count(self, collected: int, quarantined: int) -> None:
        provider = self.mailbox.provider
        if quarantined:
            self.metrics.messages_quarantined.labels(provider, "collect").inc(quarantined)
            self.result.quarantined += quarantined
        if collected:
            self.metrics.messages_collected.labels(provider).inc(collected)
            self.result.collected += collected

    async def _acknowledge(self, group: list[tuple[MessageRef, _Item]]) -> None:
        """Only now, with the letters committed (or, where the mailbox waits for it, delivered), may the
        provider forget them; until then they are listed again at every poll. A letter listed again
        after its acknowledgement (a lost ack, or the same file dropped twice) is acknowledged again."""
        done: list[str] = []
        result = self.result
        due: list[tuple[MessageRef, Known]] = []
        for ref, item in group:
            known = self.known.get(ref.key)
            if item is None or known is None:
                continue
            if not known.may_acknowledge(self.mailbox):
                result.awaiting_delivery += 1
                continue
            due.append((ref, known))
        try:
            at_once = await self._acknowledge_at_once(due)
            for ref, known in due:
                if ref.key not in at_once:
                    correlation_id.set(known.message_id)
                    try:
                        await _retrying(partial(self.connector.acknowledge, ref), attempts=self.retries,
                                        result=result)
                    except TransientError as exc:
                        _note_wait(result, exc)
                        result.failed += 1
                        log.warning("acknowledgement failed after %d attempts; retried at the next poll: %s",
                                    self.retries, exc)
                        continue
                result.acknowledged += 1
                if not known.acknowledged:
                    result.newly_acknowledged += 1
                    done.append(known.message_id)
                    self.known[ref.key] = replace(known, acknowledged=True)
        finally:
            self.unrecorded += done

    async def record_acknowledged(self) -> None:
        """Record what was acknowledged since the last commit, in a transaction of its own."""
        if self.unrecorded:
            done = tuple(self.unrecorded)
            await asyncio.to_thread(ledger.mark_acknowledged, self.store, done)
            del self.unrecorded[:len(done)]

    async def _acknowledge_at_once(self, due: list[tuple[MessageRef, Known]]) -> set[str]:
        """The keys a connector with `acknowledge_many` let go of in one call, as many as the budget
        allows (a request each); the rest, and any that failed, go one by one with retries."""
        many = getattr(self.connector, "acknowledge_many", None)
        affordable = due[:max(0, self.result.budget - self.result.requests)]
        if many is None or not affordable:
            return set()
        for _ in affordable:
            self.result.spend()
        errors: Sequence[ConnectorError | None] = await many([ref for ref, _ in affordable])
        return {ref.key for (ref, _), error in zip(affordable, errors, strict=True) if error is None}


async def _list(connector: Connector, cursor: str | None, retries: int, result: PollResult) -> Page | None:
    """One listing page; None when it failed after something was done already (the poll ends there)."""
    try:
        return await _retrying(lambda: connector.list_new(cursor), attempts=retries, result=result)
    except TransientError as exc:
        if not (result.progressed or result.skipped or result.failed):
            raise
        _note_wait(result, exc)
        result.failed += 1
        log.warning("listing failed after %d attempts; what was listed is kept: %s", retries, exc)
        return None


async def _reconcile_acks(store: Store, mailbox: MailboxKey, connector: Connector, result: PollResult,
                          retries: int) -> None:
    """Finish acknowledgements a crash interrupted: the provider may already have forgotten the
    message (so it is never listed again), and acknowledging twice is harmless by contract."""
    done: list[str] = []
    try:
        for message_id, ref in await asyncio.to_thread(ledger.pending_acks, store, mailbox):
            correlation_id.set(message_id)
            try:
                await _retrying(lambda: connector.acknowledge(ref), attempts=retries, result=result)
            except TransientError as exc:
                _note_wait(result, exc)
                result.failed += 1
                log.warning("reconciling an acknowledgement failed; retried at the next poll: %s", exc)
                continue
            done.append(message_id)
            result.acknowledged += 1
            result.newly_acknowledged += 1
            log.info("acknowledgement reconciled id=%s mailbox=%s", message_id, mailbox.name)
    finally:
        if done:
            await asyncio.to_thread(ledger.mark_acknowledged, store, done, reconciled=True)


async def _collect_page(store: Store, mailbox: MailboxKey, connector: Connector, refs: Sequence[MessageRef],
                        metrics: Metrics, result: PollResult, retries: int, organisations: Collection[str]) -> None:
    """The page's letters in listing order: up to the connector's `letters_in_flight` fetched (and
    parsed) at once, stored in groups in that order (`_Page.commit`), each group acknowledged after its
    commit. An error that ends the poll (budget, authentication) stores what was fetched before the
    letter it came from; a cancelled poll stores nothing more (the next poll fetches it again)."""
    known = await asyncio.to_thread(ledger.find_many, store, mailbox, [ref.key for ref in refs])
    page = _Page(store, mailbox, connector, metrics, result, retries, known)

    async def fetch(ref: MessageRef) -> Outcome | None:
        return await _fetch_outcome(mailbox, connector, ref, result, retries, organisations)

    width = max(1, int(getattr(connector, "letters_in_flight", 1)))
    window: deque[tuple[MessageRef, asyncio.Task[Outcome | None] | None]] = deque()
    fetching: set[str] = set()
    taken = in_flight = 0
    try:
        while True:
            while in_flight < width and taken < len(refs):
                ref = refs[taken]
                new = ref.key not in known and ref.key not in fetching
                # A letter is begun only when the budget can also finish what is begun (a fetch and an
                # acknowledgement each): a poll that ends on its budget leaves nothing half done.
                owed = 2 * in_flight + (len(window) - in_flight) + len(page.group) + (2 if new else 1)
                if result.budget - result.requests < owed:
                    break
                taken += 1
                if not new:
                    window.append((ref, None))  # stored already (or earlier in this page): acknowledged only
                else:
                    fetching.add(ref.key)
                    window.append((ref, asyncio.create_task(fetch(ref))))
                    in_flight += 1
            if not window:
                if taken < len(refs):
                    await page.commit()
                    raise BudgetSpent()
                break
            ref, task = window[0]
            if task is not None and not task.done() and page.group:
                # the next letter is slow: what is ready waits for it a moment at most
                await asyncio.wait({task}, timeout=page.wait_left())
                if not task.done():
                    await page.commit()
            window.popleft()
            if task is None:
                page.add(ref, _KNOWN)
                continue
            in_flight -= 1
            try:
                outcome = await task
            except Exception:
                await page.commit()  # what came before in the listing is kept, as one by one
                raise
            page.add(ref, outcome)
            if page.full():
                await page.commit()
        await page.commit()
    finally:
        for _, task in window:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(task for _, task in window if task is not None), return_exceptions=True)
        await page.record_acknowledged()


async def _fetch_outcome(mailbox: MailboxKey, connector: Connector, ref: MessageRef, result: PollResult,
                         retries: int, organisations: Collection[str]) -> Outcome | None:
    """What to store for a new letter; None when its fetch still failed (the next poll retries it)."""
    correlation_id.set(f"{mailbox.organisation_cvr}/{mailbox.name}:{ref.key[:24]}")
    try:
        fetched = await _retrying(lambda: _fetch(connector, ref), attempts=retries, result=result)
    except (PermanentError, _Unexpected) as exc:
        log.warning("message quarantined mailbox=%s key=%s reason=%s", mailbox.name, ref.key, exc)
        return Quarantine(ref, str(exc), exc.raw if isinstance(exc, PermanentError) else None)
    except TransientError as exc:
        # This message only: the rest of the listing goes on, and the next poll retries it.
        _note_wait(result, exc)
        result.failed += 1
        log.warning("fetch failed after %d attempts; retried at the next poll: %s", retries, exc)
        return None
    placed = place(fetched.message, mailbox.organisation_cvr, organisations)
    if placed.quarantined is not None:
        log.warning("message quarantined mailbox=%s key=%s reason=%s", mailbox.name, ref.key, placed.quarantined)
        return Quarantine(ref, placed.quarantined, fetched.raw)
    return Collect(fetched, placed.organisation, placed.held)
