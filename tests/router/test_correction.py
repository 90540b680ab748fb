"""Correction is a first-class action: `postbud queue correct` re-routes a letter the model sent wrong,
records the override in the trace, teaches the model, counts in the realised-precision metric, and
enough corrections pause automatic routing and tell the administrators."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import col, select
from typer.testing import CliRunner

from collector.ledger import sync_mailboxes
from core.storage.models import (
    ApprovalStatus,
    Delivery,
    DeliveryStatus,
    Message,
    MessageStatus,
    RecipientApproval,
    RoutingDecision,
    TraceEvent,
)
from postbud.cli.app import app
from postbud.runtime import Runtime
from router.learning import confirmed_examples
from tests.conftest import MakeConfig
from tests.router.promise_kit import KINDS, ORG, collect, letter, place_by_hand, route_all

runner = CliRunner()


RECIPIENTS = "[org.12345678]\n" + "".join(
    f'[org.12345678.recipients.{kind}]\nname = "{kind.title()}"\nemail = "{kind}@test.dk"\n' for kind in KINDS
)


@pytest.fixture
def routed_by_model(make_config: MakeConfig, tmp_path: Path) -> Iterator[tuple[Runtime, list[str]]]:
    """A model promising 80 % trained on 100 placements, and the ids of 20 letters it routed alone."""
    (tmp_path / "recipients.toml").write_text(RECIPIENTS, encoding="utf-8")
    config = make_config(extra_org="", extra="[model]\nmin_examples = 50\ntarget_precision = 0.8\n"
                                             '[recipients]\nfile = "recipients.toml"')
    runtime = Runtime.create(config)
    with runtime.store.transaction() as session:  # every recipient approved (the model names no other)
        for kind in KINDS:
            session.add(RecipientApproval(organisation_cvr=ORG, recipient=kind, email=f"{kind}@test.dk",
                                          status=ApprovalStatus.APPROVED))
    (mailbox,) = sync_mailboxes(runtime.store, runtime.config)
    place_by_hand(runtime, mailbox, 100)
    assert runtime.models is not None and runtime.models.train(ORG).threshold != float("inf")
    rng = random.Random(21)
    for i in range(40):
        collect(runtime, mailbox, letter(5000 + i, list(KINDS)[i % 5], rng))
    route_all(runtime)
    with runtime.store.read() as session:
        by_model = list(session.exec(select(RoutingDecision.message_id).where(RoutingDecision.decided_by == "model")))
    assert len(by_model) >= 20
    yield runtime, by_model[:20]
    runtime.store.dispose()


def cli(runtime: Runtime, *args: str) -> str:
    result = runner.invoke(app, ["-c", str(runtime.config.path), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_correction_reroutes_is_traced_teaches_and_counts(routed_by_model: tuple[Runtime, list[str]]) -> None:
    runtime, ids = routed_by_model
    wrong = ids[0]
    with runtime.store.read() as session:
        was = session.exec(select(RoutingDecision).where(RoutingDecision.message_id == wrong)).one().recipients[0]
    right = next(k for k in KINDS if k != was)
    # WHEN a person corrects a letter the model routed alone
    said = cli(runtime, "queue", "correct", wrong[:10], right, "--by", "mette")
    assert "model had sent it to" in said
    # THEN it is routed to the right recipient; what waited for the wrong one is held as history
    shown = json.loads(cli(runtime, "trace", "show", wrong, "--json"))
    assert shown["status"] == "routed"
    last = shown["events"][-1]
    assert (last["kind"], last["actor"], last["to_status"]) == ("corrected", "mette", "routed")
    decision = shown["decisions"][-1]
    assert decision["decided_by"] == "hand" and decision["recipients"] == [right]
    assert decision["explanation"]["corrected"]["decided_by"] == "model"
    assert decision["explanation"]["corrected"]["recipients"] == [was]
    with runtime.store.read() as session:
        rows = {d.recipient: d.status for d in session.exec(select(Delivery).where(Delivery.message_id == wrong))}
    assert rows == {was: DeliveryStatus.HELD, right: DeliveryStatus.PENDING}
    # AND the model learns from it, labelled with the right recipient
    labels = [e.label for e in confirmed_examples(runtime.store, ORG)]
    assert len(labels) == 101 and labels.count(right) == 21
    # AND the realised precision metric counts it
    runtime.models.state(ORG, fresh=True)
    sample = runtime.metrics.registry.get_sample_value
    assert sample("postbud_model_corrections", {"organisation": ORG}) == 1
    routed = sample("postbud_model_routed_alone", {"organisation": ORG})
    assert routed is not None and routed >= 20
    assert sample("postbud_model_realised_precision", {"organisation": ORG}) == pytest.approx(1 - 1 / routed)
    assert sample("postbud_model_automation_paused", {"organisation": ORG}) == 0
    assert sample("postbud_model_target_precision", {"organisation": ORG}) == 0.8


def test_a_delivered_letter_can_be_corrected(routed_by_model: tuple[Runtime, list[str]]) -> None:
    runtime, ids = routed_by_model
    wrong = ids[1]
    with runtime.store.transaction() as session:  # the outbox worker delivered it
        message = session.get(Message, wrong)
        assert message is not None
        message.status = MessageStatus.DELIVERED
        for row in session.exec(select(Delivery).where(Delivery.message_id == wrong)):
            row.status = DeliveryStatus.DELIVERED
            session.add(row)
        session.add(message)
        was = session.exec(select(RoutingDecision).where(RoutingDecision.message_id == wrong)).one().recipients[0]
    right = next(k for k in KINDS if k != was)
    cli(runtime, "queue", "correct", wrong, right, "--by", "mette")
    with runtime.store.read() as session:
        rows = {d.recipient: d.status for d in session.exec(select(Delivery).where(Delivery.message_id == wrong))}
        status = session.get(Message, wrong).status  # type: ignore[union-attr]
    assert status == MessageStatus.ROUTED
    assert rows == {was: DeliveryStatus.DELIVERED, right: DeliveryStatus.PENDING}


def test_corrections_below_the_target_pause_automation_and_tell_the_administrators(
    routed_by_model: tuple[Runtime, list[str]],
) -> None:
    runtime, ids = routed_by_model
    # WHEN people correct 20 of the letters the model routed alone (it promised 80 %)
    for message_id in ids[:20]:
        with runtime.store.read() as session:
            was = session.exec(select(RoutingDecision).where(RoutingDecision.message_id == message_id)) \
                .one().recipients[0]
        cli(runtime, "queue", "correct", message_id, next(k for k in KINDS if k != was), "--by", "mette")
    # THEN automatic routing is paused, the administrators are told, and `model show` says why
    with runtime.store.read() as session:
        kinds = [e.kind for e in session.exec(select(TraceEvent).where(col(TraceEvent.message_id).is_(None)))]
    assert kinds.count("automation_paused") == 1 and "notification" in kinds
    shown = json.loads(cli(runtime, "model", "show", "--org", ORG, "--json"))[0]
    assert shown["paused"] is True and shown["automating"] is False
    assert "paused" in shown["why_not"] and shown["corrected"] == 20
    assert runtime.models is not None
    runtime.models.state(ORG, fresh=True)
    assert runtime.metrics.registry.get_sample_value("postbud_model_automation_paused", {"organisation": ORG}) == 1
    # AND a letter the model would have routed alone now waits for a person, saying why
    (mailbox,) = sync_mailboxes(runtime.store, runtime.config)
    collect(runtime, mailbox, letter(9000, "finance", random.Random(2)))
    route_all(runtime)
    with runtime.store.read() as session:
        last = session.exec(select(RoutingDecision).order_by(col(RoutingDecision.id).desc())).first()
    assert last is not None and last.action == "hold" and "paused" in last.explanation["model_reason"]


def test_model_show_gives_threshold_examples_and_coverage(routed_by_model: tuple[Runtime, list[str]]) -> None:
    runtime, _ = routed_by_model
    (shown,) = json.loads(cli(runtime, "model", "show", "--json"))
    assert shown["organisation"] == ORG and shown["examples"] == 100 and shown["recipients"] == 5
    assert 0.8 <= shown["threshold"] <= 1.0 and shown["automating"] is True and shown["why_not"] is None
    assert 0 < shown["coverage"] <= 1 and shown["evidence"] == 20
    assert "threshold" in cli(runtime, "model", "show")
