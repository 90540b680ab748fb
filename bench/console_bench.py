"""Benchmark: console page render times with 10,000 held letters and 1,000,000 trace events (SQLite).

Run: `.venv/bin/python -m bench.console_bench [--messages 100000] [--events-per-message 10] [--held 10000] [--runs 9]`.
Fills the data set as bench/trace_bench.py does (five organisations, 120 days), makes `--held` of the
letters held, and times each page through the console's ASGI app in process (server time: query,
template, response; no network), signed in as an administrator of all five organisations.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from argon2 import PasswordHasher
from sqlalchemy import text
from starlette.applications import Starlette

from bench.trace_bench import NOW, ORGS, fill
from core import codec
from core.config import Config, ConsoleSettings, OrganisationConfig
from core.domain import Document, DocumentKind, File, MessageType, NormalizedMessage, Party
from core.storage import daily_counts, migrate
from core.storage.db import Store, make_engine
from core.storage.models import Mailbox, Message, RoutingDecision
from core.storage.vault import Vault, load_keyring
from postbud.console import accounts
from postbud.console.app import console_mount

PASSWORD = "benchmark password"


def make_held(store: Store, held: int) -> str:
    """Hold `held` letters in all (the fill holds about 5 %), and add one real, sealed letter as the oldest."""
    with store.engine.begin() as conn:
        have = conn.execute(text("SELECT count(*) FROM message WHERE status = 'held'")).scalar_one()
        conn.execute(text("UPDATE message SET status = 'held', status_reason = 'no rule matched' WHERE id IN "
                          "(SELECT id FROM message WHERE status != 'held' LIMIT :n)"), {"n": max(0, held - have - 1)})
    letter = NormalizedMessage(
        message_id=str(uuid.uuid4()), message_type=MessageType.DIGITALPOST, title="Afgørelse om moms",
        sender=Party(id="29188548", id_type="CVR", name="Skattestyrelsen"),
        recipient=Party(id=ORGS[0], id_type="CVR", name="Org"), format="memo-1.2",
        documents=(Document(DocumentKind.MAIN, (File("brev.pdf", "application/pdf", b"%PDF-1.4 brev"),)),),
        text="Skattestyrelsen har truffet afgørelse om momstilsvaret. " * 20)
    with store.transaction() as session:
        row = Message(mailbox_id=1, organisation_cvr=ORGS[0], provider="ngdp", provider_message_id="bench-oldest",
                      status="held", status_reason="no rule matched", received_at=NOW - timedelta(days=200),
                      updated_at=NOW)
        attachments = codec.seal(store.vault, row, letter, None)
        session.add(row)
        session.flush()
        session.add_all(attachments)
        session.add(RoutingDecision(message_id=row.id, action="hold", decided_by="model", recipients=[],
                                    explanation={"suggestions": [{"label": "jens", "probability": 0.6}]}))
        return row.id


async def measure(app: Starlette, paths: list[str], runs: int) -> list[tuple[str, float, int]]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        signed = await client.post("/console/signin", data={"username": "bench-admin", "password": PASSWORD})
        assert signed.status_code == 303, signed.text
        results = []
        for path in paths:
            samples = []
            size = 0
            for _ in range(runs):
                started = time.perf_counter()
                response = await client.get(path)
                samples.append(time.perf_counter() - started)
                assert response.status_code == 200, (path, response.status_code)
                size = len(response.content)
            results.append((path, statistics.median(samples) * 1000, size))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--events-per-message", type=int, default=10)
    parser.add_argument("--held", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--keep", type=Path, help="a folder to keep the filled database in (reused when there)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        reuse = (tmp / "bench.db").exists()
        store = Store(make_engine(f"sqlite:///{tmp}/bench.db"), Vault(load_keyring(tmp / "keys.json", create=True)))
        migrate.upgrade(store.engine)
        started = time.perf_counter()
        if reuse:
            events = args.messages * args.events_per_message
            with store.engine.connect() as conn:
                oldest = conn.execute(text("SELECT id FROM message WHERE provider_message_id = 'bench-oldest'")).scalar_one()
                conn.execute(text("DELETE FROM console_session"))
                conn.execute(text("DELETE FROM console_user"))
                conn.commit()
        else:
            events = fill(store, args.messages, args.events_per_message, random.Random(8))
            oldest = make_held(store, args.held)
        settling = time.perf_counter()
        folded = daily_counts.settle(store)  # as the daemon does every minute
        settled = time.perf_counter() - settling
        with store.engine.begin() as conn:
            held = conn.execute(text("SELECT count(*) FROM message WHERE status = 'held'")).scalar_one()
            conn.exec_driver_sql("ANALYZE")
            boxes = conn.execute(text("SELECT count(*) FROM mailbox")).scalar_one()
        print(f"filled {args.messages:,} messages ({held:,} held), {events:,} trace events, {boxes} mailboxes "
              f"in {time.perf_counter() - started:.0f} s; the statistics' roll-up folded {folded:,} changes in "
              f"{settled:.1f} s")
        accounts.use_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))  # sign-in is not timed
        accounts.add_user(store, "bench-admin", PASSWORD, profile="administrator", organisations=ORGS)
        config = Config(console=ConsoleSettings(enabled=True),
                        organisations=tuple(OrganisationConfig(cvr=c, name=c) for c in ORGS))
        app = Starlette(routes=[console_mount(store, lambda: config, lambda: None)])
        with store.engine.connect() as conn:  # the last page of the queue, as its "More" links reach it
            at, last_id = conn.execute(text("SELECT received_at, id FROM message WHERE status = 'held' "
                                            "ORDER BY received_at, id LIMIT 1 OFFSET :n"), {"n": held - 51}).one()
            placed = conn.execute(text("SELECT id FROM message WHERE status = 'delivered' AND routed_by IS NOT NULL "
                                       "ORDER BY received_at LIMIT 1")).scalar_one()
        after = f"{str(at).replace(' ', 'T')}~{last_id}".replace("+", "%2B")
        paths = ["/console/queue", f"/console/queue?after={after}", f"/console/queue/{oldest}",
                 "/console/trace", "/console/trace?text=l%C3%B8nsum", f"/console/trace?cvr={ORGS[1]}&status=held",
                 f"/console/trace/{oldest}", "/console/placed", f"/console/correct/{placed}", "/console/stats?by=day",
                 "/console/stats?by=month", "/console/stats?by=year", "/console/health", "/console/audit"]
        print(f"\nmedian of {args.runs} requests, in process (server time):")
        for path, ms, size in asyncio.run(measure(app, paths, args.runs)):
            flag = "" if ms < 200 else "  > 200 ms"
            print(f"  {path[:60]:<60} {ms:8.1f} ms {size / 1024:6.0f} KiB{flag}")
        store.dispose()


if __name__ == "__main__":
    main()
