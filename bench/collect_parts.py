"""The collector's daemon-side work for N drop-folder letters, step by step in one thread: CPU per letter.

The letters are read and parsed once beforehand, as the parse workers do (`read_and_parse`: the file,
the letter and its content JSON; not measured here); then each step the daemon does per letter is
timed on its own with `time.process_time`: the drop folder's scan (SHA-256 of each file), the parse
call's pickles (the file's path out; its bytes, the parsed letter and its content JSON back), storing
groups of 50 (`save_group`, SQLite), recording the acknowledgements, deleting the originals, and the
log lines a collected letter writes. The parts add up to what one collect costs the daemon
besides its event loop's hops:

    .venv/bin/python -m bench.collect_parts [--letters 2000] [--profile STEP out.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pickle
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    # Imports here: a parse worker imports this module by name, and need not import all of postbud.
    from bench.e2e import drop_letters
    from bench.stages_bench import write_config
    from collector.ledger import mark_acknowledged, sync_mailboxes
    from collector.storing import Collect, save_group
    from connectors.base import Fetched, MessageRef
    from connectors.files import parse_message_file
    from connectors.dropfiles import read_and_parse
    from connectors.folder import FolderConnector, FolderSettings
    from core.configfile import load_config
    from core.logs import configure, correlation_id
    from postbud.runtime import Runtime

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--letters", type=int, default=2000)
    parser.add_argument("--profile", nargs=2, metavar=("STEP", "FILE"), help="cProfile one step into FILE")
    args = parser.parse_args()
    n = args.letters
    folder = Path(tempfile.mkdtemp(prefix="postbud-collect-parts-"))
    try:
        config = load_config(write_config(folder))
        drop_letters(folder, n)
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {n} letters")
        runtime = Runtime.create(config)
        store = runtime.store
        mailbox = sync_mailboxes(store, config)[0]
        drop = folder / "var" / "drop"
        connector = FolderConnector(FolderSettings(path=drop, settle_seconds=0, max_files_per_poll=10**6), None)  # type: ignore[arg-type]
        state: dict[str, Any] = {}

        def step(name: str, fn: Callable[[], Any]) -> Any:
            profile = cProfile.Profile() if args.profile and args.profile[0] == name else None
            cpu = time.process_time()
            if profile is not None:
                profile.enable()
            out = fn()
            if profile is not None:
                profile.disable()
                profile.dump_stats(args.profile[1])
            cpu = time.process_time() - cpu
            print(f"  {name:<12} {1000 * cpu / n:6.3f} ms/letter")
            return out

        refs: list[MessageRef] = step("scan", connector._scan)
        limit = 1 << 26
        # what the parse worker sends back for each letter: its bytes, the letter, its content JSON
        done = [read_and_parse(parse_message_file, str(drop / ref.handle), limit, limit) for ref in refs]
        sizes = [len(pickle.dumps(d, protocol=pickle.HIGHEST_PROTOCOL)) for d in done]
        print(f"  (a parse worker's reply pickles to {sum(sizes) / n / 1024:.1f} KB, the file is "
              f"{sum(len(raw) for raw, _, _ in done) / n / 1024:.1f} KB)")
        step("pickle-args", lambda: [pickle.loads(pickle.dumps(
            (read_and_parse, (parse_message_file, str(drop / ref.handle), limit, limit), True),
            pickle.HIGHEST_PROTOCOL)) for ref in refs])
        step("pickle-back", lambda: [pickle.loads(pickle.dumps(("ok", d, False), pickle.HIGHEST_PROTOCOL))
                                     for d in done])
        fetched = [Fetched(ref=ref, raw=raw, raw_media_type="application/xml", message=m, document=document)
                   for ref, (raw, m, document) in zip(refs, done, strict=True)]

        def store_all() -> None:
            state["known"] = []
            for start in range(0, n, 50):
                state["known"] += save_group(store, mailbox, [Collect(f) for f in fetched[start:start + 50]])

        step("save_group", store_all)
        ids = [known.message_id for known in state["known"]]
        step("mark_acked", lambda: [mark_acknowledged(store, ids[s:s + 50]) for s in range(0, n, 50)])

        configure("INFO")
        handler = logging.getLogger().handlers[-1]
        handler.stream = open(os.devnull, "w")  # type: ignore[misc]
        sys.stderr, stderr = open(os.devnull, "w"), sys.stderr
        log = logging.getLogger("collector.poll")

        def log_lines() -> None:
            for message_id in ids:
                correlation_id.set(message_id)
                log.info("message collected id=%s mailbox=%s%s", message_id, "drop", "")

        step("log", log_lines)
        sys.stderr = stderr
        step("delete", lambda: [connector._remove(ref) for ref in refs])
        runtime_close = getattr(runtime, "aclose", None)
        if runtime_close is not None:
            import asyncio

            asyncio.run(runtime_close())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
