"""The worker does what a delivery error's class says (errors.py), and only translate.py classifies
third-party failures."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from worker_testkit import (
    collect_and_route,
    deliver,
    delivery_toml,
    recipients_toml,
    state,
    vouch,
)

import delivery
from delivery import errors
from delivery.channels import Outbound, Sent
from delivery.errors import (
    Action,
    ChannelUnavailable,
    DeliveryError,
    PermanentDeliveryError,
    RecipientUnusable,
    TransientDeliveryError,
)
from postbud.runtime import Runtime

if TYPE_CHECKING:
    from delivery_testkit import RunningSmtp, ServeFactory, SmimeRecipient

    from tests.conftest import MakeConfig


@pytest.fixture
async def rt(make_config: MakeConfig, smtp_server: ServeFactory, smime_recipient: SmimeRecipient,
             tmp_path: Path) -> AsyncIterator[Runtime]:
    smtp: RunningSmtp = await smtp_server()
    recipients = recipients_toml(tmp_path, smime_recipient)
    runtime = Runtime.create(make_config(extra=delivery_toml(smtp, recipients, extra="max_attempts = 3")))
    yield runtime
    await runtime.aclose()


class Refusing:
    """A channel whose every send raises `error`."""

    name = "email"

    def __init__(self, error: DeliveryError) -> None:
        self.error = error
        self.tries = 0

    async def send(self, item: Outbound) -> Sent:
        self.tries += 1
        raise self.error

    async def aclose(self) -> None:
        return None


class RelayOnFire(ChannelUnavailable):
    """A channel fault the worker has never heard of: it must still pause the channel."""


def test_every_error_names_what_the_caller_must_do() -> None:
    expected = {
        "SmtpTransient": Action.RETRY, "WebhookTransient": Action.RETRY,
        "TlsRequired": Action.PAUSE_CHANNEL, "SmtpAuthFailed": Action.PAUSE_CHANNEL,
        "RelayUnreachable": Action.PAUSE_CHANNEL,
        "EncryptionError": Action.HOLD_RECIPIENT,
        "SmtpPermanent": Action.DEAD_LETTER, "WebhookPermanent": Action.DEAD_LETTER,
    }
    assert {name: getattr(errors, name).action for name in expected} == expected
    # the channel's faults are not the letter's: no transient or permanent letter error among them
    assert not issubclass(errors.TlsRequired, (TransientDeliveryError, PermanentDeliveryError))
    assert not issubclass(errors.SmtpAuthFailed, (TransientDeliveryError, PermanentDeliveryError))
    # and the drawing in the docstring names every class of the module
    classes = {n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, DeliveryError)}
    assert all(name in (errors.__doc__ or "") for name in classes)


async def test_a_channel_fault_pauses_the_channel_and_gives_the_other_letters_back(rt: Runtime) -> None:
    # GIVEN three routed letters and a relay that fails in a way only the channel is to blame for
    vouch(rt)
    ids = await collect_and_route(rt, 1, 2, 3)
    channel = Refusing(RelayOnFire("relay on fire"))
    # WHEN the worker runs
    assert await deliver(rt, channels={"email": channel}, lanes=1) == 0
    # THEN the channel was tried once; no letter was charged an attempt, all wait for the channel
    assert channel.tries == 1
    rows = sorted(state(rt, mid).deliveries[0][1:] for mid in ids)
    assert rows == [("pending", 0), ("pending", 0), ("pending", 0)]
    assert sum("delivery_channel_paused" in state(rt, mid).kinds() for mid in ids) == 1
    assert rt.metrics.delivery_channel_paused.labels("email")._value.get() == 1


@pytest.mark.parametrize(("error", "status", "kind"), [
    (TransientDeliveryError("try later", code=451), "pending", "delivery_retry"),
    (PermanentDeliveryError("no such user", code=550), "failed", "delivery_failed"),
    (RecipientUnusable("key unusable"), "held", "held"),
])
async def test_each_letter_fault_gets_its_action(rt: Runtime, error: DeliveryError, status: str,
                                                 kind: str) -> None:
    vouch(rt)
    (mid,) = await collect_and_route(rt, 1)
    channel = Refusing(error)
    assert await deliver(rt, channels={"email": channel}) == 1
    done = state(rt, mid)
    assert done.deliveries == [("reception", status, 1)]
    assert kind in done.kinds()


def test_only_translate_classifies_transport_failures() -> None:
    # the SMTP and webhook error classes are built in one module; the rest of delivery/ raises its
    # own errors (TlsRequired for "not https", EncryptionError, ...) but never classifies a reply
    classifying = {"SmtpTransient", "SmtpPermanent", "WebhookTransient", "WebhookPermanent", "WebhookRefused",
                   "PostAuthFailed"}
    where: dict[str, set[str]] = {}
    for path in Path(delivery.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in classifying:
                where.setdefault(path.name, set()).add(node.func.id)
    assert set(where) == {"translate.py"}
