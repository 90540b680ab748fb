"""Several instances on one PostgreSQL database: do they share a busy mailbox set? (issue 14, finding 9)

M mailboxes with L letters each wait at a provider where every request costs `latency`; K instances
(separate processes) start together in cron mode (`run_all_once` until everything is stored) and the
bench reports the wall time until every letter is committed, and how the mailboxes split. Run:

    POSTBUD_TEST_PG=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python -m bench.sharing_bench --mailboxes 40 --letters 10 --instances 1 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import ClassVar

import sqlalchemy
from sqlmodel import func, select

from collector.dispatch import Dispatcher, MailboxRuntime
from collector.ledger import sync_mailboxes
from connectors.base import Capability, ConnectorSettings, Fetched, MessageRef, Page
from core.config import Config
from core.configfile import load_config
from core.domain import MessageType, NormalizedMessage, Party
from core.metrics import Metrics
from core.notify import TraceNotifier
from core.storage.models import Message, TraceEvent
from postbud.runtime import open_store


class SlowMailbox:
    """L letters behind a provider where every request costs `latency` seconds."""

    name: ClassVar[str] = "slow"
    Settings: ClassVar[type[ConnectorSettings]] = ConnectorSettings
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    def __init__(self, ident: str, letters: int, latency: float) -> None:
        self.keys = [f"{ident}-{i}" for i in range(letters)]
        self.latency = latency
        self.acked: set[str] = set()

    async def list_new(self, cursor: str | None) -> Page:
        await asyncio.sleep(self.latency)
        return Page(tuple(MessageRef(k, k) for k in self.keys if k not in self.acked), None, False)

    async def fetch(self, ref: MessageRef) -> Fetched:
        await asyncio.sleep(self.latency)
        message = NormalizedMessage(message_id=ref.key, message_type=MessageType.DIGITALPOST, title=f"Brev {ref.key}",
                                    sender=Party("29634750", "CVR", "Skattestyrelsen"),
                                    recipient=Party("12345678", "CVR"), format="bench")
        return Fetched(ref, os.urandom(20_000), "application/pdf", message)

    async def acknowledge(self, ref: MessageRef) -> None:
        await asyncio.sleep(self.latency)
        self.acked.add(ref.key)

    async def aclose(self) -> None:
        return None


def write_config(folder: Path, url: str, mailboxes: int) -> Path:
    boxes = "".join(f'  [[organisations.mailboxes]]\n  name = "mb{i}"\n  type = "folder"\n  path = "in{i}"\n'
                    f'  acknowledge = "after_commit"\n' for i in range(mailboxes))
    path = folder / "postbud.toml"
    path.write_text(f'[database]\nurl = "{url}"\n[[organisations]]\ncvr = "12345678"\nname = "T"\n{boxes}')
    return path


def instance(path: str, owner: str, letters: int, latency: float, start_at: float,
             out: "multiprocessing.Queue[tuple[str, int, float]]") -> None:
    config: Config = load_config(Path(path))
    store = open_store(config)
    keys = sync_mailboxes(store, config)
    dispatcher = Dispatcher(store, Metrics(), config.collector, TraceNotifier(store, {}), owner=owner, jitter=0)
    dispatcher.mailboxes = {k.id: MailboxRuntime(k, SlowMailbox(k.name, letters, latency), 60.0, "fp") for k in keys}
    late = time.time() - start_at
    time.sleep(max(0.0, -late))
    asyncio.run(dispatcher.run_all_once())
    polled = int(sum(s.value for m in dispatcher.metrics.polls.collect() for s in m.samples
                     if s.name.endswith("_total")))
    out.put((owner, polled, round(max(0.0, late), 2)))
    store.dispose()


def run(base_url: str, mailboxes: int, letters: int, latency: float, instances: int) -> dict[str, object]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(base_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as connection:
        connection.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    url = f"{base_url}{'&' if '?' in base_url else '?'}options=-csearch_path%3D{schema}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = write_config(Path(tmp), url, mailboxes)
            store = open_store(load_config(path))  # the keyring and schema, before the clock starts
            start_at = time.time() + 8.0  # every process imported and connected before the clock
            ctx = multiprocessing.get_context("spawn")
            out = ctx.Queue()
            procs = [ctx.Process(target=instance, args=(str(path), f"i{n}", letters, latency, start_at, out))
                     for n in range(instances)]
            for proc in procs:
                proc.start()
            for proc in procs:
                proc.join()
            elapsed = time.time() - start_at
            split = sorted(out.get() for _ in procs)
            with store.read() as session:
                stored = session.exec(select(func.count()).select_from(Message)).one()
                owners = Counter(e.detail.get("mailbox") for e in session.exec(
                    select(TraceEvent).where(TraceEvent.kind == "collected")))
            store.dispose()
        return {"instances": instances, "mailboxes": mailboxes, "letters": mailboxes * letters,
                "stored": stored, "seconds": round(elapsed, 2), "mailboxes_polled": len(owners),
                "polls_per_instance": [p for _, p, _ in split], "late_start": [t for _, _, t in split]}
    finally:
        with admin.begin() as connection:
            connection.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mailboxes", type=int, default=40)
    parser.add_argument("--letters", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    base = os.environ.get("POSTBUD_TEST_PG")
    if not base:
        raise SystemExit("set POSTBUD_TEST_PG to a PostgreSQL URL")
    for n in args.instances:
        print(json.dumps(run(base, args.mailboxes, args.letters, args.latency, n)))


if __name__ == "__main__":
    main()
