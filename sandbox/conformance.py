"""The connector conformance suite: what every connector must prove against its fake provider.

Any connector, built-in or third-party, runs it against a fake that implements `ConformanceFake`::

    from sandbox import conformance

    @pytest.mark.parametrize("check", conformance.CHECKS, ids=conformance.check_id)
    async def test_conformance(check, my_fake, make_my_connector):
        await check(conformance.Target(make_my_connector, my_fake, cvr="12345674"))

or all at once: `report = await conformance.run_conformance(make_connector, fake, cvr=...)`.

The suite plays the collector (list -> dedupe on key -> fetch -> commit -> acknowledge) and checks
each obligation of `connectors.base.Connector`:

- `check_contract`              the declarations: `name`, a frozen `Settings` that rejects unknown
                                keys, `capabilities`, `default_acknowledge`; `Replier` with REPLY;
- `check_pagination_complete`   listing from cursor None to `more=False` yields every message;
- `check_no_double_fetch`       with keys deduplicated each message is downloaded exactly once, and
                                an acknowledged message is not listed again;
- `check_ack_after_commit`      listing and fetching acknowledge nothing; acknowledging after the
                                commit does, and acknowledging twice is harmless;
- `check_handles_survive_restart` refs listed by one connector instance are fetched and
                                acknowledged by a new one (the collector persists key, handle and meta);
- `check_auth_failure`          broken credentials raise `AuthError`;
- `check_transient_faults`      429 (with `retry_after` taken from Retry-After), 500, 503, an HTML
                                reply and a truncated body raise `TransientError` (or, for the
                                truncated body, are recovered by the connector itself), and the
                                same call succeeds once the fault is gone;
- `check_poison_message`        a message whose content can never parse raises `PermanentError`,
                                and the other messages still fetch.

The fake interface (`ConformanceFake`), which a fake built on `sandbox` gets mostly for free:

- `reset()`                      forget all messages, faults, poison, acknowledgements; auth works again;
- `add_messages(messages)`       make these messages available to the connector (each fake files them
                                 by `message.recipient.id`, the CVR) and return their listing keys
                                 (`MessageRef.key`), in the same order;
- `inject(fault, times=1)`       apply a `sandbox.faults.Fault` to the next `times` requests;
- `set_poison(key)`              serve unparseable content for that message from now on;
- `break_auth()`                 reject the connector's credentials from now on (401 or the provider's
                                 equivalent) until `reset()`;
- `acknowledged()`               keys the connector has acknowledged (deleted, marked, receipted);
- `fetch_counts()`               key -> how many times the message's content was downloaded.

`make_connector` returns a new connector (or an awaitable of one) configured against the fake; the
suite closes every connector it makes. The connector should use a small page size (e.g. 10) so the
suite's 25 messages span several pages.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from connectors.base import (
    AcknowledgePolicy,
    AuthError,
    Capability,
    Connector,
    ConnectorError,
    ConnectorSettings,
    MessageRef,
    PermanentError,
    Replier,
    TransientError,
)
from sandbox.faults import Fault
from sandbox.generator import generate
from core.domain import NormalizedMessage


@runtime_checkable
class ConformanceFake(Protocol):
    """Structural interface of a fake provider under the suite (see the module docstring)."""

    def reset(self) -> None: ...
    def add_messages(self, messages: Sequence[NormalizedMessage]) -> list[str]: ...
    def inject(self, fault: Fault, *, times: int = 1) -> None: ...
    def set_poison(self, key: str) -> None: ...
    def break_auth(self) -> None: ...
    def acknowledged(self) -> set[str]: ...
    def fetch_counts(self) -> Mapping[str, int]: ...


ConnectorMaker = Callable[[], "Connector | Awaitable[Connector]"]


class ConformanceFailure(AssertionError):
    """A connector broke the contract; the message says which obligation."""


@dataclass(frozen=True)
class Target:
    """What a check runs against: how to make the connector, its fake, and the mailbox's CVR."""

    make_connector: ConnectorMaker
    fake: ConformanceFake
    cvr: str = "12345674"
    messages: int = 25
    seed: int = 7
    max_pages: int = 1000
    # The provider forgets a message when it is fetched (e-Boks: /content marks it read, §1.5), so
    # "acknowledged" is observable only from the fetch on; postbud's acknowledgement is local.
    acknowledges_at_fetch: bool = False


@dataclass
class Report:
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ConformanceFailure(message)


async def _connector(target: Target) -> Connector:
    made = target.make_connector()
    return await made if inspect.isawaitable(made) else made


def _prepare(target: Target, count: int | None = None) -> tuple[list[NormalizedMessage], list[str]]:
    target.fake.reset()
    messages = generate(target.cvr, target.messages if count is None else count, seed=target.seed)
    keys = target.fake.add_messages(messages)
    _expect(len(keys) == len(messages), "add_messages must return one key per message")
    return messages, keys


async def list_all(connector: Connector, *, max_pages: int = 1000) -> list[MessageRef]:
    """Every ref from cursor None until `more` is False, in listing order (duplicates kept)."""
    refs: list[MessageRef] = []
    cursor: str | None = None
    for _ in range(max_pages):
        page = await connector.list_new(cursor)
        refs.extend(page.refs)
        if not page.more:
            return refs
        _expect(page.cursor is not None, "a page with more=True must carry a cursor")
        cursor = page.cursor
    raise ConformanceFailure(f"listing did not end within {max_pages} pages")


def _dedupe(refs: Sequence[MessageRef]) -> dict[str, MessageRef]:
    unique: dict[str, MessageRef] = {}
    for ref in refs:
        unique.setdefault(ref.key, ref)
    return unique


async def check_pagination_complete(target: Target) -> None:
    _, keys = _prepare(target)
    connector = await _connector(target)
    try:
        refs = await list_all(connector, max_pages=target.max_pages)
    finally:
        await connector.aclose()
    listed = set(_dedupe(refs))
    missing = set(keys) - listed
    _expect(not missing, f"listing to the end missed {len(missing)} of {len(keys)} messages")
    _expect(listed <= set(keys), f"listing named unknown keys: {sorted(listed - set(keys))[:3]}")


async def check_no_double_fetch(target: Target) -> None:
    messages, keys = _prepare(target)
    by_key = dict(zip(keys, messages, strict=True))
    connector = await _connector(target)
    try:
        unique = _dedupe(await list_all(connector, max_pages=target.max_pages))
        for key, ref in unique.items():
            fetched = await connector.fetch(ref)
            _expect(fetched.ref.key == key, "Fetched.ref must be the ref that was fetched")
            _expect(fetched.message.title == by_key[key].title,
                    f"fetching {key} returned another message (title differs)")
            await connector.acknowledge(ref)
        counts = target.fake.fetch_counts()
        twice = {k: n for k, n in counts.items() if n != 1 and k in unique}
        _expect(not twice, f"messages downloaded more than once: {twice}")
        _expect(all(counts.get(k, 0) == 1 for k in keys), "some message was never downloaded")
        again = _dedupe(await list_all(connector, max_pages=target.max_pages))
        _expect(not set(again) & set(keys), "acknowledged messages were listed again")
    finally:
        await connector.aclose()


async def check_ack_after_commit(target: Target) -> None:
    _, keys = _prepare(target, count=5)
    connector = await _connector(target)
    committed: set[str] = set()
    try:
        unique = _dedupe(await list_all(connector, max_pages=target.max_pages))
        _expect(not target.fake.acknowledged(), "listing acknowledged messages")
        for key, ref in unique.items():
            await connector.fetch(ref)
            _expect(target.acknowledges_at_fetch or key not in target.fake.acknowledged(),
                    f"{key} was acknowledged by fetch, before the collector committed it")
            committed.add(key)  # the collector's commit
        for key, ref in unique.items():
            _expect(key in committed, "suite bug: acknowledging an uncommitted message")
            await connector.acknowledge(ref)
            _expect(key in target.fake.acknowledged(), f"acknowledge({key}) did not reach the provider")
        for ref in unique.values():
            await connector.acknowledge(ref)  # twice SHALL be harmless
        _expect(target.fake.acknowledged() >= set(keys), "not every committed message was acknowledged")
    finally:
        await connector.aclose()


async def check_handles_survive_restart(target: Target) -> None:
    _, keys = _prepare(target, count=4)
    lister = await _connector(target)
    try:
        listed = _dedupe(await list_all(lister, max_pages=target.max_pages))
    finally:
        await lister.aclose()
    # What the collector persisted: key, handle and meta as plain strings.
    stored = [MessageRef(r.key, r.handle, {str(k): str(v) for k, v in r.meta.items()})
              for r in listed.values()]
    restarted = await _connector(target)
    try:
        for ref in stored:
            try:
                fetched = await restarted.fetch(ref)
                await restarted.acknowledge(ref)
            except ConnectorError as exc:
                raise ConformanceFailure(
                    f"a ref listed before the restart failed after it: {type(exc).__name__}: {exc}") from exc
            _expect(fetched.raw != b"", f"{ref.key}: fetched no raw bytes")
    finally:
        await restarted.aclose()
    _expect(target.fake.acknowledged() >= set(keys),
            "a new connector could not acknowledge refs listed by an earlier one")


async def check_auth_failure(target: Target) -> None:
    _prepare(target, count=3)
    target.fake.break_auth()
    connector = await _connector(target)
    try:
        await connector.list_new(None)
    except AuthError:
        return
    except Exception as exc:
        raise ConformanceFailure(f"broken credentials raised {type(exc).__name__}, not AuthError") from exc
    finally:
        await connector.aclose()
    raise ConformanceFailure("broken credentials did not raise at all")


_TRANSIENT: tuple[tuple[str, Fault, float | None], ...] = (
    ("429", Fault.rate_limited(retry_after=7), 7.0),
    ("503", Fault.unavailable(retry_after=3), 3.0),
    ("500", Fault.server_error(500), None),
    ("non-json", Fault.non_json(), None),
)


async def _expect_transient(name: str, call: Callable[[], Awaitable[object]],
                            retry_after: float | None) -> None:
    try:
        await call()
    except TransientError as exc:
        if retry_after is not None:
            _expect(exc.retry_after == retry_after,
                    f"{name}: retry_after {exc.retry_after!r}, Retry-After said {retry_after}")
        return
    except Exception as exc:
        raise ConformanceFailure(f"{name} raised {type(exc).__name__}, not TransientError") from exc
    raise ConformanceFailure(f"{name} did not raise TransientError")


async def check_transient_faults(target: Target) -> None:
    messages, keys = _prepare(target, count=3)
    connector = await _connector(target)
    try:
        for name, fault, retry_after in _TRANSIENT:
            target.fake.inject(fault)
            await _expect_transient(f"list {name}", lambda: connector.list_new(None), retry_after)
        ref = next(iter(_dedupe(await list_all(connector, max_pages=target.max_pages)).values()))
        # A connector may serve the first fetch from what listing already read (NgDP's whole-memo
        # header peek); the faults below are for fetches that go to the provider.
        await connector.fetch(ref)
        for name, fault, retry_after in _TRANSIENT:
            target.fake.inject(fault)
            await _expect_transient(f"fetch {name}", lambda: connector.fetch(ref), retry_after)
        target.fake.inject(Fault.truncated())
        try:
            recovered = await connector.fetch(ref)
            _expect(recovered.message.message_id == messages[keys.index(ref.key)].message_id,
                    "a truncated body was recovered into the wrong message")
        except TransientError:
            pass
        except Exception as exc:
            raise ConformanceFailure(f"truncated body raised {type(exc).__name__}") from exc
        fetched = await connector.fetch(ref)  # the retry after the faults succeeds
        _expect(fetched.ref.key == ref.key, "fetch after the faults returned another message")
    finally:
        await connector.aclose()


async def check_poison_message(target: Target) -> None:
    _, keys = _prepare(target, count=4)
    poison = keys[1]
    target.fake.set_poison(poison)
    connector = await _connector(target)
    try:
        unique = _dedupe(await list_all(connector, max_pages=target.max_pages))
        _expect(set(keys) <= set(unique), "a poison message must still be listed")
        for key, ref in unique.items():
            if key != poison:
                await connector.fetch(ref)
                continue
            try:
                await connector.fetch(ref)
            except PermanentError:
                continue
            except Exception as exc:
                raise ConformanceFailure(f"poison raised {type(exc).__name__}, not PermanentError") from exc
            raise ConformanceFailure("a poison message was fetched without error")
    finally:
        await connector.aclose()


async def check_contract(target: Target) -> None:
    connector = await _connector(target)
    try:
        kind = type(connector)
        name, settings = getattr(kind, "name", None), getattr(kind, "Settings", None)
        _expect(isinstance(name, str) and bool(name), "the class declares no name")
        if not (isinstance(settings, type) and issubclass(settings, ConnectorSettings)):
            raise ConformanceFailure("Settings is not a ConnectorSettings subclass")
        config = settings.model_config
        _expect(config.get("frozen") is True and config.get("extra") == "forbid",
                "Settings must be frozen and reject unknown keys")
        capabilities = getattr(kind, "capabilities", None)
        _expect(isinstance(capabilities, frozenset) and all(isinstance(c, Capability) for c in capabilities),
                "capabilities is not a frozenset of Capability")
        _expect(getattr(kind, "default_acknowledge", None) in set(AcknowledgePolicy),
                "default_acknowledge is not an AcknowledgePolicy")
        if Capability.REPLY in (capabilities or ()):
            _expect(isinstance(connector, Replier), "claims Capability.REPLY but is no Replier (send_reply)")
    finally:
        await connector.aclose()


Check = Callable[[Target], Awaitable[None]]
CHECKS: tuple[Check, ...] = (
    check_contract,
    check_pagination_complete,
    check_no_double_fetch,
    check_ack_after_commit,
    check_handles_survive_restart,
    check_auth_failure,
    check_transient_faults,
    check_poison_message,
)


def check_id(check: Check) -> str:
    return check.__name__.removeprefix("check_")


async def run_conformance(make_connector: ConnectorMaker, fake: ConformanceFake, *,
                          cvr: str = "12345674", messages: int = 25) -> Report:
    """Runs every check and reports which passed; the fake is reset before each and after the last."""
    target = Target(make_connector, fake, cvr=cvr, messages=messages)
    report = Report()
    for check in CHECKS:
        try:
            await check(target)
        except ConformanceFailure as exc:
            report.failed[check_id(check)] = str(exc)
        except Exception as exc:  # noqa: BLE001 - an escaping error is this check's failure
            report.failed[check_id(check)] = f"unexpected {type(exc).__name__}: {exc}"
        else:
            report.passed.append(check_id(check))
    fake.reset()
    return report
