"""The delivery stage alone, on a real outbox: a kept end-to-end run's letters delivered again.

`python -m bench.e2e --letters 500 --keep DIR` leaves a folder whose letters were delivered; this
copies it, puts every outbox row back to pending and its letter to routed, starts the sandbox's mail
server (its own process) and runs the daemon's delivery stage in this process: wall and CPU time,
and how many outbox transactions the groups took. `--profile FILE` runs the worker threads' work
inline so that cProfile sees it (slower; for where the time goes, not for the figures).

    .venv/bin/python -m bench.deliver_stage DIR [--profile out.prof]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

POSTBUD = [sys.executable, str(Path(sys.executable).parent / "postbud")]


def reset(kept: Path) -> Path:
    work = Path(tempfile.mkdtemp(prefix="postbud-deliver-"))
    shutil.copytree(kept, work, dirs_exist_ok=True)
    with sqlite3.connect(work / "var" / "postbud.db") as db:
        db.execute("UPDATE delivery SET status = 'pending', attempts = 0, next_attempt_at = '2020-01-01 00:00:00', "
                   "delivered_at = NULL, lease_owner = NULL, lease_expires_at = NULL, send_started_at = NULL")
        db.execute("UPDATE message SET status = 'routed'")
    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kept", type=Path, help="a folder kept by bench.e2e --keep (SQLite)")
    parser.add_argument("--profile", type=Path, help="cProfile into this file (worker-thread work inline)")
    args = parser.parse_args()
    work = reset(args.kept)
    sandbox = subprocess.Popen([*POSTBUD, "-c", str(work / "sandbox.toml"), "sandbox"], cwd=work,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert sandbox.stdout is not None
    for line in sandbox.stdout:
        if line.startswith(b"smtp "):
            break
    os.chdir(work / "var")
    from core.configfile import load_config
    from delivery import group_commit
    from postbud.daemon import Daemon
    from postbud.runtime import Runtime

    groups: Counter[int] = Counter()
    commit = group_commit.commit

    def counted(store: Any, changes: Any, **kwargs: Any) -> Any:
        groups[len(changes)] += 1
        return commit(store, changes, **kwargs)

    group_commit.commit = counted
    if args.profile:
        async def inline(func: Callable[..., Any], *a: Any, **k: Any) -> Any:
            return func(*a, **k)

        asyncio.to_thread = inline  # type: ignore[assignment]
    runtime = Runtime.create(load_config(work / "postbud.toml"))

    async def deliver() -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        n = await Daemon(runtime).deliver()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        changes = sum(size * count for size, count in groups.items())
        print(f"delivered {n} in {wall:.2f} s wall ({n / wall:.0f}/s), {cpu:.2f} s CPU "
              f"({1000 * cpu / max(1, n):.2f} ms per letter); {changes} outbox changes in {sum(groups.values())} "
              f"group transactions; load average {os.getloadavg()[0]:.1f}")
        await runtime.aclose()

    try:
        if args.profile:
            cProfile.runctx("asyncio.run(deliver())", globals(), {"deliver": deliver, "asyncio": asyncio},
                            str(args.profile))
        else:
            asyncio.run(deliver())
    finally:
        sandbox.send_signal(signal.SIGINT)
        sandbox.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
