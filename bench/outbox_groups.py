"""The delivery stage's database work alone: claim, read the content, start and record sends in groups.

No relay, no encryption: on a copy of a kept end-to-end run's database (`python -m bench.e2e --letters
2000 --keep DIR`), every outbox row is put back to pending and its letter to routed, then the rows are
claimed `--batch` at a time, their content read CHUNK at a time (delivery/worker.py), and the sends
started and recorded as delivered in group commits of `--group` changes (delivery/group_commit.py), as
the lanes of a delivery run would. Prints the CPU time per letter of each part and the statements each
kind of group sends to the database (an executemany counts once), so that a change to those modules
can be measured without the noise of the rest.

    .venv/bin/python -m bench.outbox_groups DIR [--group 8] [--batch 50] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.deliver_stage import reset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kept", type=Path, help="a folder kept by bench.e2e --keep (SQLite)")
    parser.add_argument("--group", type=int, default=8, help="changes per group commit (default 8: the lanes)")
    parser.add_argument("--batch", type=int, default=50, help="rows claimed at a time ([delivery] batch_size)")
    parser.add_argument("--profile", type=Path, help="cProfile the whole run into this file")
    args = parser.parse_args()
    work = reset(args.kept)
    os.chdir(work / "var")
    try:
        profile = cProfile.Profile() if args.profile else None
        if profile is not None:
            profile.enable()
        run(work, group=args.group, batch=args.batch)
        if profile is not None:
            profile.disable()
            profile.dump_stats(str(args.profile))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, *, group: int, batch: int) -> None:
    from sqlalchemy import event

    from core.configfile import load_config
    from core.storage.models import utcnow
    from delivery import contents, group_commit, outbox, worker
    from postbud.runtime import Runtime

    runtime = Runtime.create(load_config(work / "postbud.toml"))
    store, owner, now = runtime.store, "bench", utcnow()
    statements: Counter[str] = Counter()
    phase = ["other"]
    cpu: Counter[str] = Counter()
    inside: Counter[str] = Counter()  # CPU in the driver's execute and commit: the database's own work
    entered = [0.0]

    def before(*_: Any) -> None:
        statements[phase[0]] += 1
        entered[0] = time.process_time()

    def after(*_: Any) -> None:
        inside[phase[0]] += time.process_time() - entered[0]

    event.listen(store.engine, "before_cursor_execute", before)
    event.listen(store.engine, "after_cursor_execute", after)
    do_commit = store.engine.dialect.do_commit

    def committing(connection: Any) -> None:
        started = time.process_time()
        do_commit(connection)
        inside[phase[0]] += time.process_time() - started

    store.engine.dialect.do_commit = committing  # type: ignore[method-assign]
    groups: Counter[str] = Counter()
    letters = 0

    def timed(name: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        phase[0] = name
        started = time.process_time()
        try:
            return func(*args, **kwargs)
        finally:
            cpu[name] += time.process_time() - started
            phase[0] = "other"

    wall = time.perf_counter()
    while jobs := timed("claim", outbox.claim, store, owner, now=now, ttl=dt.timedelta(minutes=5), limit=batch):
        letters += len(jobs)
        for first in range(0, len(jobs), worker.CHUNK):
            timed("contents", contents.read_contents, store, {j.message_id for j in jobs[first:first + worker.CHUNK]})
        started: list[Any] = []
        for first in range(0, len(jobs), group):
            changes = [group_commit.Start(job) for job in jobs[first:first + group]]
            groups["start"] += 1
            started += timed("start", group_commit.commit, store, changes, owner=owner, now=now)
        for first in range(0, len(started), group):
            done = [group_commit.Delivered(job, "250 2.0.0 Ok: queued as X", f"<{job.id}@bench>", {})
                    for job in started[first:first + group]]
            groups["delivered"] += 1
            assert all(timed("delivered", group_commit.commit, store, done, owner=owner, now=now))
    wall = time.perf_counter() - wall
    total = sum(cpu.values())
    print(f"{letters} letters, groups of {group}, claimed {batch} at a time: {1000 * total / letters:.2f} ms CPU "
          f"per letter ({wall:.2f} s wall); load average {os.getloadavg()[0]:.1f}")
    for name in ("claim", "contents", "start", "delivered"):
        per_group = f", {statements[name] / groups[name]:.1f} statements per group" if name in groups else ""
        print(f"  {name:10s} {1000 * cpu[name] / letters:.3f} ms per letter (database's own "
              f"{1000 * inside[name] / letters:.3f}){per_group}")
    runtime.store.dispose()


if __name__ == "__main__":
    main()
