"""Trace search filters, `trace download` / `trace resend`, and the purge / erase commands."""

from __future__ import annotations

import json
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from postbud.cli.ops import ops_app
from postbud.cli.trace import app as trace_app
from core.config import Config
from core.domain import Attention
from core.lifecycle import IllegalTransition
from core.storage.db import Store
from core.storage.models import Delivery, Message
from postbud.trace import SearchFilter, search, show
from postbud.trace_actions import TraceActionError, download, resend
from tests.conftest import MakeConfig
from tests.postbud.ops_testkit import ORG_A, ORG_B, Out, Spec, add, days_ago, store_for

runner = CliRunner()


@pytest.fixture
def setup(make_config: MakeConfig) -> tuple[Config, Store]:
    config = make_config()
    return config, store_for(config)


def ids(store: Store, **kwargs: object) -> list[str]:
    return [row["id"] for row in search(store, SearchFilter(**kwargs))]  # type: ignore[arg-type]


def test_search_filters(setup: tuple[Config, Store]) -> None:
    _, store = setup
    moms = add(store, Spec(days_ago(1), title="Momsangivelse 100% betalt", decided_by="rule", status="delivered",
                           outbox=[Out("bogholderi@a.dk"), Out("https://hook", channel="webhook")]))
    skat = add(store, Spec(days_ago(2), title="Årsopgørelse", decided_by="rule", status="failed",
                           outbox=[Out("løn@a.dk", status="failed", after_seconds=None)]))
    other = add(store, Spec(days_ago(3), org=ORG_B, title="Momsangivelse_B"))

    assert ids(store, recipient="bogholderi@a.dk") == [moms]
    assert ids(store, recipient="LØN") == [skat]
    assert ids(store, channel="webhook") == [moms]
    assert ids(store, channel="email") == [moms, skat]
    assert ids(store, text="skattestyrelsen") == [moms, skat, other]  # free text covers the sender
    assert ids(store, text="100%") == [moms] and ids(store, text="0%b") == []  # % is literal
    assert ids(store, text="t_b") == [] and ids(store, text="e_b") == [other]  # _ is literal
    assert ids(store, organisation=ORG_B) == [other]
    assert ids(store, mailbox="inbox", provider="folder") == [moms, skat, other]
    assert ids(store, mailbox="elsewhere") == [] and ids(store, provider="ngdp") == []
    assert ids(store, limit=2) == [moms, skat]
    assert ids(store, status="failed", recipient="a.dk") == [skat]
    assert ids(store, since=days_ago(2.5), until=days_ago(1.5)) == [skat]
    # the positional form the CLI uses still works
    positional = SearchFilter(ORG_A, None, None, "Skattestyrelsen", None, None, None, "moms", 10)
    assert [r["id"] for r in search(store, positional)] == [moms]
    row = search(store, SearchFilter(text="moms", organisation=ORG_A))[0]
    assert {"id", "status", "organisation", "mailbox", "provider_message_id", "title", "sender",
            "received_at", "purged_at"} <= set(row)
    assert show(store, moms, organisation=ORG_B) is None and show(store, moms[:8], organisation=ORG_B) is None
    assert [d["channel"] for d in show(store, moms)["deliveries"]] == ["email", "webhook"]  # type: ignore[index]


def test_download_writes_decrypted_originals_and_says_so(setup: tuple[Config, Store], tmp_path: Path) -> None:
    config, store = setup
    mid = add(store, Spec(days_ago(1), files=(("brev.pdf", b"%PDF-1.4 brev"), ("../../etc/bilag.pdf", b"%PDF bilag")),
                          raw=b"<memo>original</memo>"))
    target = tmp_path / "out"

    result = runner.invoke(trace_app, ["download", mid[:10], "-o", str(target), "-c", str(config.path)],
                           env={"POSTBUD_USER": "mette"})

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in target.iterdir()) == ["1-1-brev.pdf", "1-2-bilag.pdf", "original.xml"]
    assert (target / "1-2-bilag.pdf").read_bytes() == b"%PDF bilag"
    assert (target / "original.xml").read_bytes() == b"<memo>original</memo>"
    assert stat.S_IMODE((target / "1-1-brev.pdf").stat().st_mode) == 0o600
    events = show(store, mid)["events"]  # type: ignore[index]
    assert events[-1]["kind"] == "downloaded" and events[-1]["detail"] == {"files": 3}
    assert events[-1]["actor"] == "mette"  # who downloaded it: $POSTBUD_USER, else the login
    with pytest.raises(TraceActionError, match="exists already"):
        download(store, mid, target, actor="test")
    missing = runner.invoke(trace_app, ["download", "ffffffffff", "-o", str(target), "-c", str(config.path)])
    assert missing.exit_code == 1


def test_resend_requeues_the_outbox_through_the_state_machine(setup: tuple[Config, Store]) -> None:
    config, store = setup
    mid = add(store, Spec(days_ago(1), decided_by="rule", status="delivered",
                          outbox=[Out("a@a.dk"), Out("b@a.dk", status="failed", after_seconds=None)]))

    result = runner.invoke(trace_app, ["resend", mid, "-c", str(config.path)])
    assert result.exit_code == 0, result.output

    with store.read() as session:
        message = session.get(Message, mid)
        rows = list(session.exec(select(Delivery).where(Delivery.message_id == mid)))
    assert message is not None and message.status == "delivering"
    assert {(r.recipient, r.status, r.delivered_at) for r in rows} == {("a@a.dk", "pending", None),
                                                                         ("b@a.dk", "pending", None)}
    assert all(":resend-" in r.idempotency_key for r in rows)
    last = show(store, mid)["events"][-1]  # type: ignore[index]
    assert (last["kind"], last["from_status"], last["to_status"]) == ("resent", "delivered", "delivering")

    # a message still being delivered is not resent
    refused = runner.invoke(trace_app, ["resend", mid, "-c", str(config.path)])
    assert refused.exit_code == 1 and "only delivered or failed" in refused.stderr

    failed = add(store, Spec(days_ago(1), decided_by="rule", status="failed", outbox=[Out("a@a.dk", status="failed")]))
    outcome = resend(store, failed, actor="test", to="chef@a.dk")
    assert outcome.added == "chef@a.dk" and outcome.requeued == ()
    with store.read() as session:
        new = session.exec(select(Delivery).where(Delivery.recipient == "chef@a.dk")).one()
    assert (new.message_id, new.channel, new.status) == (failed, "email", "pending")
    assert IllegalTransition  # the state machine, not this module, decides what may be resent


def test_purge_and_erase_commands(setup: tuple[Config, Store]) -> None:
    config, store = setup
    now = datetime.now(timezone.utc)  # the commands run on the real clock
    old = add(store, Spec(days_ago(200, now), attention=Attention(person_id="0101901234")))
    add(store, Spec(days_ago(1, now), attention=Attention(person_id="0101901234")))

    dry = runner.invoke(ops_app, ["purge", "--dry-run", "--json", "-c", str(config.path)])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["totals"]["content"] == 1
    with store.read() as session:
        assert session.get(Message, old).content is not None  # type: ignore[union-attr]
    real = runner.invoke(ops_app, ["purge", "-c", str(config.path)])
    assert real.exit_code == 0 and "purged: 1 messages" in real.stdout

    refused = runner.invoke(ops_app, ["erase", "--cpr", "010190-1234", "-c", str(config.path)], input="n\n")
    assert refused.exit_code == 1
    erased = runner.invoke(ops_app, ["erase", "--cpr", "010190-1234", "--yes", "--json", "-c", str(config.path)])
    assert erased.exit_code == 0, erased.output
    receipt = json.loads(erased.stdout)
    assert receipt["messages"] == 1 and "0101901234" not in erased.stdout  # the purged tombstone holds no CPR
    bad = runner.invoke(ops_app, ["erase", "--cpr", "12", "-c", str(config.path)])
    assert bad.exit_code == 2
