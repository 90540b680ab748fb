"""Benchmark: trace search latency on 1,000,000 trace events (~100k messages) in SQLite, and purge throughput.

Run: `.venv/bin/python bench/trace_bench.py [--messages 100000] [--events-per-message 10] [--runs 15]`.
The data spans 120 days for five organisations; a purge at 90 days' retention then removes about a
quarter. Rows are bulk-inserted (content blobs are random bytes of realistic size: a purge never
decrypts), so filling takes a minute or two; the figures reported are medians of `--runs` queries.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert

from core.config import Config, OrganisationConfig
from postbud.retention import purge
from postbud.stats import ops_reading, stats
from core.storage import migrate
from core.storage.db import Store, make_engine
from core.storage.models import (
    Attachment, Delivery, Mailbox, Message, Organisation, RoutingDecision, TraceEvent, new_id,
)
from core.storage.vault import Vault, load_keyring
from postbud.trace import SearchFilter, search, show

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ORGS = [f"{40000000 + i * 7:08d}" for i in range(5)]
SENDERS = ["Skattestyrelsen", "Erhvervsstyrelsen", "Københavns Kommune", "Udbetaling Danmark", "Arbejdstilsynet",
           "Danmarks Statistik", "Sikkerhedsstyrelsen", "Færdselsstyrelsen", "Miljøstyrelsen", "Energistyrelsen"]
WORDS = ["Momsangivelse", "Årsopgørelse", "Påmindelse", "Afgørelse", "Kvittering", "Indberetning", "Rykker",
         "Lønsumsafgift", "Tilsyn", "Høring", "Ejendomsskat", "Registrering"]
PEOPLE = ["jens", "mette", "anders", "sofie", "lars", "karen", "peter", "hanne", "bogholderi", "loen", "ledelse"]
KINDS = ["collected", "acknowledged", "routed", "delivering", "delivered", "notified", "viewed", "archived"]


def fill(store: Store, messages: int, events_per_message: int, rng: random.Random) -> int:
    """Bulk-insert the data set; returns the number of trace events written."""
    events = 0
    with store.engine.begin() as conn:
        conn.execute(insert(Organisation), [{"id": i + 1, "cvr": c, "name": f"Org {c}"}
                                                      for i, c in enumerate(ORGS)])
        conn.execute(insert(Mailbox), [
            {"id": i * 2 + j + 1, "organisation_id": i + 1, "name": f"box{j}", "provider": ("ngdp", "eboks")[j],
             "status": "active", "consecutive_failures": 0}
            for i in range(len(ORGS)) for j in range(2)
        ])
    chunk = 5000
    for start in range(0, messages, chunk):
        rows: dict[Any, list[dict[str, Any]]] = {t: [] for t in (Message, Attachment, RoutingDecision, Delivery,
                                                                 TraceEvent)}
        for _ in range(start, min(start + chunk, messages)):
            org = rng.randrange(len(ORGS))
            box = org * 2 + rng.randrange(2) + 1
            received = NOW - timedelta(seconds=rng.uniform(0, 120 * 86400))
            mid = new_id()
            status = rng.choices(["delivered", "held", "failed", "routed"], [90, 5, 2, 3])[0]
            person = rng.choice(PEOPLE)
            rows[Message].append({
                "id": mid, "mailbox_id": box, "organisation_cvr": ORGS[org], "provider": ("ngdp", "eboks")[box % 2],
                "provider_message_id": mid, "status": status, "title": f"{rng.choice(WORDS)} {rng.randrange(10000)}",
                "sender_id": "29188505", "sender_name": rng.choice(SENDERS), "recipient_id": ORGS[org],
                "received_at": received, "updated_at": received, "content": os.urandom(600), "raw": os.urandom(1500),
                "message_type": "DIGITALPOST", "format": "memo-1.2",
            })
            rows[Attachment].append({"id": new_id(), "message_id": mid, "document_index": 0, "file_index": 0,
                                     "document_kind": "main", "name": "brev.pdf", "media_type": "application/pdf",
                                     "size": 2048, "content": os.urandom(2048)})
            rows[RoutingDecision].append({"message_id": mid, "created_at": received, "action": "route",
                                          "decided_by": rng.choice(["rule", "rule", "model", "hand"]),
                                          "recipients": [f"{person}@firma.dk"], "explanation": {"rule": "r1"}})
            channel = "webhook" if rng.random() < 0.1 else "email"
            rows[Delivery].append({"id": new_id(), "message_id": mid, "organisation_cvr": ORGS[org],
                                   "recipient": f"{person}@firma.dk", "channel": channel,
                                   "status": "delivered" if status == "delivered" else "pending",
                                   "idempotency_key": f"{mid}:{person}:{channel}", "attempts": 1,
                                   "created_at": received, "next_attempt_at": received,
                                   "delivered_at": received + timedelta(seconds=30) if status == "delivered" else None})
            for k in range(events_per_message):
                rows[TraceEvent].append({"message_id": mid, "at": received + timedelta(seconds=k),
                                         "kind": KINDS[k % len(KINDS)], "actor": "bench", "detail": {}})
            events += events_per_message
        with store.engine.begin() as conn:
            for table, values in rows.items():
                conn.execute(insert(table), values)
    return events


def timed(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--events-per-message", type=int, default=10)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    rng = random.Random(8)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(make_engine(f"sqlite:///{tmp}/bench.db"), Vault(load_keyring(Path(tmp) / "keys.json", create=True)))
        migrate.upgrade(store.engine)
        started = time.perf_counter()
        events = fill(store, args.messages, args.events_per_message, rng)
        print(f"filled {args.messages:,} messages, {events:,} trace events in {time.perf_counter() - started:.0f} s")
        with store.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
        some_id = search(store, SearchFilter(limit=1))[0]["id"]
        queries: list[tuple[str, Callable[[], object]]] = [
            ("newest 100, no filter", lambda: search(store, SearchFilter())),
            ("organisation", lambda: search(store, SearchFilter(organisation=ORGS[1]))),
            ("organisation + status held", lambda: search(store, SearchFilter(organisation=ORGS[1], status="held"))),
            ("sender (part of name)", lambda: search(store, SearchFilter(sender="statistik"))),
            ("free text (title or sender)", lambda: search(store, SearchFilter(text="lønsum"))),
            ("recipient (part of address)", lambda: search(store, SearchFilter(recipient="mette"))),
            ("channel webhook", lambda: search(store, SearchFilter(channel="webhook"))),
            ("last 7 days", lambda: search(store, SearchFilter(since=NOW - timedelta(days=7)))),
            ("org + 30 days + text", lambda: search(store, SearchFilter(organisation=ORGS[2], text="rykker",
                                                                        since=NOW - timedelta(days=30)))),
            ("rare text (no match)", lambda: search(store, SearchFilter(text="findes ikke"))),
            ("show one timeline", lambda: show(store, some_id)),
        ]
        print(f"\nmedian of {args.runs} runs (limit 100):")
        for name, fn in queries:
            print(f"  {name:<32} {timed(fn, args.runs):8.1f} ms")
        print(f"  {'stats by month (all 100k)':<32} {timed(lambda: stats(store, None, 'month', NOW), 3):8.1f} ms")
        print(f"  {'/metrics database gauges':<32} {timed(lambda: ops_reading(store, NOW), args.runs):8.1f} ms")
        config = Config(organisations=tuple(OrganisationConfig(cvr=c, name=c, retention_days=90) for c in ORGS))
        started = time.perf_counter()
        report = purge(store, config, NOW, batch_size=1000)
        elapsed = time.perf_counter() - started
        t = report.totals
        rows = t.content + t.attachment + t.trace_event
        print(f"\npurge at 90 days: {t.content:,} messages tombstoned, {t.attachment:,} attachments and "
              f"{t.trace_event:,} trace events deleted in {elapsed:.1f} s = {rows / elapsed:,.0f} rows/s "
              f"({t.content / elapsed:,.0f} messages/s)")
        store.dispose()


if __name__ == "__main__":
    main()
