"""The route stage alone, and the model's training, as `bench.e2e` meets them: N collected letters routed
by the example rules with the demo recipients file (fuzzy attention matching) and the model enabled.

The letters (bench/e2e_letters.py) are collected once into a scratch folder; each repetition routes a
fresh copy of that database in this process's main thread (so `--profile` sees the work), then
trains the organisation's model on what was routed, as `run --once` does at its end:

    .venv/bin/python -m bench.route_bench [--letters 2000] [--repeat 3] [--profile out.prof] [--keep DIR]

Reports route CPU ms per letter and the training's CPU seconds (the best of the repetitions: the
least disturbed by other processes).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.e2e import CVR, drop_letters  # noqa: E402
from bench.stages_bench import write_config as stages_config  # noqa: E402
from core.configfile import load_config  # noqa: E402
from postbud.runtime import Runtime  # noqa: E402
from router.stage import route_batch  # noqa: E402
from sandbox.demo import approve_demo_recipients, ensure_demo_recipient, write_demo_recipients  # noqa: E402


def write_config(folder: Path) -> Path:
    """The example rules, the demo recipients (approved), the model on; one drop folder."""
    keys = ensure_demo_recipient(folder / "var" / "keys-demo")
    write_demo_recipients(folder / "var" / "recipients.toml", [CVR], keys)
    return stages_config(folder, recipients="var/recipients.toml")


async def _collect(config_path: Path) -> None:
    config = load_config(config_path)
    runtime = Runtime.create(config)
    try:
        assert runtime.recipients is not None
        approve_demo_recipients(runtime.store, config, runtime.recipients)
        await runtime.dispatcher.run_all_once()
    finally:
        await runtime.dispatcher.shutdown()
        await runtime.aclose()


def _snapshot(db: Path, to: Path) -> None:
    with sqlite3.connect(db) as source, sqlite3.connect(to) as copy:
        source.backup(copy)


def route_and_train(config_path: Path, letters: int, profile: cProfile.Profile | None) -> tuple[float, float]:
    """Route everything collected, then train; (route CPU s, training CPU s)."""
    config = load_config(config_path)
    runtime = Runtime.create(config)
    try:
        assert runtime.models is not None
        routed, cpu = 0, time.process_time()
        if profile is not None:
            profile.enable()
        while done := route_batch(runtime.store, runtime.decider, runtime.metrics, directory=runtime.recipients,
                                  channels=config.delivery.channels, limit=config.schedule.batch_size):
            routed += done
        if profile is not None:
            profile.disable()
        route_cpu = time.process_time() - cpu
        wall, cpu = time.perf_counter(), time.process_time()
        outcome = runtime.models.train(CVR)
        train_cpu = time.process_time() - cpu
        print(f"  routed {routed} in {route_cpu:.2f} s CPU = {1000 * route_cpu / letters:.3f} ms per letter; "
              f"trained={outcome.trained} on {outcome.examples} examples in {train_cpu:.2f} s CPU "
              f"({time.perf_counter() - wall:.2f} s wall)")
        return route_cpu, train_cpu
    finally:
        asyncio.run(runtime.aclose())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--letters", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="cProfile the routing (not the training) into this file")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (collected once, reused)")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="postbud-route-"))
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "postbud.toml"
    collected = folder / "collected.db"
    db = folder / "var" / "postbud.db"
    if not collected.exists():
        config = write_config(folder)
        drop_letters(folder, args.letters)
        asyncio.run(_collect(config))
        _snapshot(db, collected)
    os.chdir(folder)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    profile = cProfile.Profile() if args.profile else None
    best = (float("inf"), float("inf"))
    for _ in range(args.repeat):
        shutil.rmtree(folder / "var" / "models", ignore_errors=True)
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        _snapshot(collected, db)
        route, train = route_and_train(config, args.letters, profile)
        best = (min(best[0], route), min(best[1], train))
    print(f"route: {1000 * best[0] / args.letters:.3f} ms CPU per letter; training {best[1]:.2f} s CPU (best of "
          f"{args.repeat})")
    if profile is not None:
        profile.dump_stats(args.profile)
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
