"""Collector at scale: N mailboxes on a provider with fixed latency, polled for a while by one instance.

Reports how regularly each mailbox was polled (gaps between its polls), CPU share of one core,
peak memory, and the delay from a message appearing at the provider to its commit (p50/p95) with
any message not committed by the end ("missing"). Run:

    .venv/bin/python -m bench.collector_bench --mailboxes 100 1000 5000 --interval 60 --duration 180
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

from sqlmodel import select

from collector.dispatch import Dispatcher, MailboxRuntime
from collector.ledger import MailboxKey, sync_mailboxes
from connectors.base import Capability, ConnectorSettings, Fetched, MessageRef, Page
from core.config import CollectorSettings
from core.configfile import load_config
from postbud.daemon import EXECUTOR_THREADS
from core.domain import MessageType, NormalizedMessage, Party
from core.metrics import Metrics
from core.notify import TraceNotifier
from postbud.runtime import open_store
from core.storage.models import Mailbox, Message


class LatencyProvider:
    """One fake mailbox: every call costs `latency` seconds; messages appear while the bench runs."""

    name: ClassVar[str] = "latency"
    Settings: ClassVar[type[ConnectorSettings]] = ConnectorSettings
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    def __init__(self, ident: str, latency: float, polls: dict[str, list[float]]) -> None:
        self.ident = ident
        self.latency = latency
        self.pending: dict[str, float] = {}
        self.polls = polls

    def add(self, key: str) -> None:
        self.pending[key] = time.time()

    async def list_new(self, cursor: str | None) -> Page:
        await asyncio.sleep(self.latency)
        self.polls[self.ident].append(time.monotonic())
        return Page(tuple(MessageRef(k, k) for k in self.pending), None, False)

    async def fetch(self, ref: MessageRef) -> Fetched:
        await asyncio.sleep(self.latency)
        message = NormalizedMessage(
            message_id=ref.key, message_type=MessageType.DIGITALPOST, title="Momsangivelse",
            sender=Party("29634750", "CVR", "Skattestyrelsen"), recipient=Party("12345678", "CVR"),
            format="bench",
        )
        return Fetched(ref, b"x" * 2048, "application/xml", message)

    async def acknowledge(self, ref: MessageRef) -> None:
        await asyncio.sleep(self.latency)
        self.pending.pop(ref.key, None)

    async def aclose(self) -> None:
        return None


async def run(mailboxes: int, interval: float, duration: float, latency: float, folder: Path) -> dict[str, float]:
    orgs = max(1, mailboxes // 3)
    lines = ['[database]\nurl = "sqlite:///bench.db"\n']
    for o in range(orgs):
        lines.append(f'[[organisations]]\ncvr = "{10000000 + o}"\nname = "Org {o}"\n')
        for m in range(3 if o < orgs - 1 else mailboxes - 3 * (orgs - 1)):
            lines.append(f'[[organisations.mailboxes]]\nname = "mb{m}"\ntype = "folder"\npath = "in"\n')
    (folder / "postbud.toml").write_text("".join(lines))
    config = load_config(folder / "postbud.toml")
    store = open_store(config)
    keys = sync_mailboxes(store, config)
    polls: dict[str, list[float]] = defaultdict(list)
    providers = {k.id: LatencyProvider(str(k.id), latency, polls) for k in keys}
    dispatcher = Dispatcher(
        store, Metrics(), CollectorSettings(), TraceNotifier(store, {}), owner="bench", jitter=interval / 6
    )
    dispatcher.mailboxes = {
        k.id: MailboxRuntime(k, providers[k.id], interval, "") for k in keys
    }
    appeared: dict[str, float] = {}
    rng = random.Random(1)
    stop = time.monotonic() + duration
    cpu0, wall0 = time.process_time(), time.monotonic()

    async def produce() -> None:
        # About one new message per mailbox every two intervals, spread evenly in time.
        rate = mailboxes / (2 * interval)
        n = 0
        # Leave one interval plus the jitter so the last messages are polled before the end.
        while time.monotonic() < stop - interval * 7 / 6:
            await asyncio.sleep(rng.expovariate(rate))
            mailbox_id = rng.choice(keys).id
            key = f"m{n}"
            n += 1
            providers[mailbox_id].add(key)
            appeared[key] = time.time()

    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=EXECUTOR_THREADS))
    producer = asyncio.create_task(produce())
    stopped = asyncio.Event()
    dispatching = asyncio.create_task(dispatcher.run(stopped))  # as the daemon runs it
    await asyncio.sleep(max(0.0, stop - time.monotonic()))
    stopped.set()
    await dispatching
    await producer
    await dispatcher.shutdown()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0

    with store.read() as session:
        committed = {m.provider_message_id: m.received_at.timestamp() for m in session.exec(select(Message))}
        assert session.exec(select(Mailbox)).first() is not None
    delays = sorted(committed[k] - t for k, t in appeared.items() if k in committed)
    missing = sum(1 for k in appeared if k not in committed)
    # How regularly each mailbox was polled: the gaps between its polls, and polls per interval.
    gaps = sorted(b - a for times in polls.values() for a, b in zip(times, times[1:], strict=False))
    never = mailboxes - len(polls)
    store.dispose()
    return {
        "mailboxes": mailboxes,
        "interval_s": interval,
        "duration_s": round(wall, 1),
        "polls": sum(len(v) for v in polls.values()),
        "polls_per_mailbox_per_interval": round(sum(len(v) for v in polls.values()) / mailboxes
                                                / (wall / interval), 3),
        "poll_gap_p50_s": round(statistics.median(gaps), 1) if gaps else float("nan"),
        "poll_gap_p95_s": round(gaps[int(0.95 * (len(gaps) - 1))], 1) if gaps else float("nan"),
        "poll_gap_max_s": round(gaps[-1], 1) if gaps else float("nan"),
        "never_polled": never,
        "cpu_share_of_one_core": round(cpu / wall, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "messages": len(appeared),
        "missing": missing,
        "delay_p50_s": round(statistics.median(delays), 2) if delays else float("nan"),
        "delay_p95_s": round(delays[int(0.95 * (len(delays) - 1))], 2) if delays else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mailboxes", type=int, nargs="+", default=[1000])
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--duration", type=float, default=180.0)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    if len(args.mailboxes) > 1:  # one process per size, so peak memory is each run's own
        import subprocess

        for n in args.mailboxes:
            subprocess.run([sys.executable, "-m", "bench.collector_bench", "--mailboxes", str(n),
                            "--interval", str(args.interval), "--duration", str(args.duration),
                            "--latency", str(args.latency)], check=True)
        return
    for n in args.mailboxes:
        with tempfile.TemporaryDirectory() as folder:
            print(f"running {n} mailboxes for {args.duration:.0f}s ...", file=sys.stderr)
            result = asyncio.run(run(n, args.interval, args.duration, args.latency, Path(folder)))
        print(json.dumps(result))


if __name__ == "__main__":
    main()
