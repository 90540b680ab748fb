"""Collection and routing alone, in one process: N MeMo letters (bench/e2e_letters.py) in a drop folder,
collected by one `run_all_once` and routed by the example rules, each stage timed on its own.

Reports per stage letters/s wall and ms of CPU per letter (this process's threads and the parse
workers), so a change to one stage is measured without the others' noise. SQLite, one instance:

    .venv/bin/python -m bench.stages_bench [--letters 2000] [--profile out.prof] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import shutil
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Only light imports here: each parse worker imports this main module again (multiprocessing does), and
# the daemon's and the letter generator's imports would cost every worker a second of CPU the real
# daemon (whose main module is the small `postbud` script) never spends.
from bench.cpu import process_cpu  # noqa: E402
from connectors import watchdog  # noqa: E402


def write_config(folder: Path, *, recipients: str | None = None) -> Path:
    """The example rules, one organisation with a drop folder; no sandbox. Without a `recipients`
    file (relative to `folder`) the model is off and letters no rule routes go to the front desk;
    with one, the model is on, as in the example config."""
    from bench.e2e import CVR

    shutil.copytree(ROOT / "rules" / "examples", folder / "rules" / "examples")
    model = 'enabled = true\nfolder = "var/models"' if recipients else "enabled = false"
    routing = f'[recipients]\nfile = "{recipients}"' if recipients else ""
    fallback = "" if recipients else 'default_route = ["frontdesk"]'
    path = folder / "postbud.toml"
    path.write_text(textwrap.dedent(f"""
        [database]
        url = "sqlite:///{folder}/var/postbud.db"
        [encryption]
        keyring = "{folder}/var/keys/keyring.json"
        [http]
        enabled = false
        [rules]
        directory = "rules/examples"
        [model]
        {{model}}
        {{routing}}
        [[organisations]]
        cvr = "{CVR}"
        name = "Eksempel Holding ApS"
        {{fallback}}
          [[organisations.mailboxes]]
          name = "drop"
          type = "folder"
          path = "var/drop"
          settle_seconds = 0
          max_files_per_poll = 100000
        """).replace("{model}", model).replace("{routing}", routing).replace("{fallback}", fallback))
    return path


def _children_cpu() -> float:
    """CPU seconds of the live parse workers so far."""
    total = 0.0
    for pid in watchdog.worker_pids():
        try:
            total += process_cpu(pid)
        except OSError:
            continue
    return total


async def _stage(name: str, letters: int, job: Callable[[], Awaitable[int]],
                 profile: cProfile.Profile | None) -> None:
    wall, cpu, workers = time.perf_counter(), time.process_time(), _children_cpu()
    if profile is not None:
        profile.enable()
    moved = await job()
    if profile is not None:
        profile.disable()
    wall = time.perf_counter() - wall
    own = time.process_time() - cpu
    parse = _children_cpu() - workers
    # `moved` counts each step a letter took (collected, then acknowledged: two for a drop-folder letter)
    print(f"{name}: {letters} letters ({moved} steps) in {wall:.2f} s wall, {letters / wall:.0f} letters/s; "
          f"CPU {own:.2f} s here "
          f"+ {parse:.2f} s in parse workers = {1000 * (own + parse) / letters:.2f} ms per letter")


async def run(config_path: Path, letters: int, profile: cProfile.Profile | None) -> None:
    from core.configfile import load_config
    from postbud.daemon import Daemon
    from postbud.runtime import Runtime

    runtime = Runtime.create(load_config(config_path))
    daemon = Daemon(runtime)
    try:
        await _stage("collect", letters, runtime.dispatcher.run_all_once, profile)
        await _stage("route", letters, daemon.route, profile)
    finally:
        await runtime.dispatcher.shutdown()
        await runtime.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--letters", type=int, default=2000)
    parser.add_argument("--profile", type=Path, help="cProfile both stages (the event loop's thread) into this file")
    parser.add_argument("--keep", type=Path, help="work in this (new) folder and keep it")
    args = parser.parse_args()
    from bench.e2e import drop_letters

    folder = args.keep or Path(tempfile.mkdtemp(prefix="postbud-stages-"))
    folder.mkdir(parents=True, exist_ok=True)
    config = write_config(folder)
    drop_letters(folder, args.letters)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    profile = cProfile.Profile() if args.profile else None
    asyncio.run(run(config, args.letters, profile))
    if profile is not None:
        profile.dump_stats(args.profile)
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
