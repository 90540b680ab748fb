"""End to end: N MeMo letters in a drop folder plus the sandbox's providers, through collect, route and S/MIME delivery.

What a new user measures: the example config (rules/examples, the demo recipients) in a scratch
folder; the sandbox's fake providers and its TLS mail server run in their own process
(`postbud sandbox`); N letters (MeMo 1.1, one-page PDF with about 2 KB of text, attention to a demo
recipient the example rules route to) wait in `var/drop/`; then `postbud run --once` runs as its own
process and is measured: wall time, its CPU time (with its parse workers), peak RSS, and from the
trace each letter's collection-to-delivery time.

    .venv/bin/python -m bench.e2e [--letters 2000] [--profile out.prof] [--py-spy out.json] [--keep DIR]
    .venv/bin/python -m bench.spy_summary out.json --thread pdf-reader   # where those threads' samples went
    .venv/bin/python -m bench.e2e --relay postfix                 # Debian's postfix on loopback
    .venv/bin/python -m bench.e2e --database postgresql://postgres@127.0.0.1:5432/test --folders 5 --claim-batch 4 --instances 2

`--relay postfix` sets up and starts Debian's postfix on 127.0.0.1:25 with STARTTLS required and a
discarding sink (bench/postfix_relay.py; root, not in CI) and delivers to it; `--relay HOST:PORT
--relay-ca FILE` to any other SMTP server with STARTTLS. `--database` runs on a fresh PostgreSQL
database made on that server for the run (dropped after it unless --keep). `--instances N` runs N
daemons (`run --once`, each its own process) at once on that database; `--folders K` spreads the
letters over K drop folders (mailboxes), and `--claim-batch` sets how many mailboxes an instance
leases at a time, so that several instances have mailboxes to share: compare one and two instances
with the same --folders and --claim-batch. With more than one instance each one's wall and CPU are
shown too, and on PostgreSQL on this machine the server's CPU meanwhile (all its processes). The
sandbox and each daemon run in a session of their own, as separate services do (see run_daemons).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cpu import descendants_cpu, process_cpu, process_io  # noqa: E402
from bench.e2e_letters import letter  # noqa: E402

CVR = "12345678"
# The installed entry point, run as a script: `python -m postbud` in the scratch folder would import
# its rules/ folder as the `rules` package.
POSTBUD = [sys.executable, str(Path(sys.executable).parent / "postbud")]
PORTS = {"ngdp": 18443, "eboks": 18444, "mitdk": 18445, "smtp": 18025, "post": 18446, "http": 9464, "idp": 18447}


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [int(s.getsockname()[1]) for s in sockets]
    for s in sockets:
        s.close()
    return ports


def write_configs(folder: Path, relay: str | None, relay_ca: Path | None, database: str | None = None,
                  folders: int = 1, claim_batch: int | None = None) -> tuple[Path, Path]:
    """The example config on free ports: one for the sandbox process, one (sandbox off) for the daemon."""
    text = more_folders((ROOT / "config.example.toml").read_text(), folders)
    for (name, default), port in zip(PORTS.items(), free_ports(len(PORTS)), strict=True):
        text = text.replace(str(default), str(port))
    shutil.copytree(ROOT / "rules" / "examples", folder / "rules" / "examples")
    sandbox = folder / "sandbox.toml"
    sandbox.write_text(text)
    daemon = text.replace("[sandbox]\nenabled = true", "[sandbox]\nenabled = false")
    if relay is not None:
        host, relay_port = relay.rsplit(":", 1)
        daemon = re.sub(r'smtp_host = "[^"]*"', f'smtp_host = "{host}"', daemon)
        daemon = re.sub(r"smtp_port = \d+", f"smtp_port = {relay_port}", daemon)
        if relay_ca is not None:
            daemon = re.sub(r'smtp_ca_file = "[^"]*"', f'smtp_ca_file = "{relay_ca}"', daemon)
    if claim_batch is not None:
        daemon = re.sub(r"claim_batch = \d+", f"claim_batch = {claim_batch}", daemon)
    if database is not None:
        daemon = re.sub(r'url = "sqlite:///var/postbud.db"', f'url = "{database}"', daemon)
    (folder / "postbud.toml").write_text(daemon)
    return sandbox, folder / "postbud.toml"


def more_folders(config: str, folders: int) -> str:
    """The example's drop-folder mailbox and folders - 1 more like it (drop-2 in var/drop-2, ...)."""
    block = re.search(r'  \[\[organisations\.mailboxes\]\]\n  name = "drop" .*?(?=\n  \[\[)', config, re.S)
    assert block is not None, "config.example.toml has no drop-folder mailbox"
    copies = "".join("\n" + block.group(0).replace('name = "drop" ', f'name = "drop-{k}"')
                     .replace('path = "var/drop"', f'path = "var/drop-{k}"') for k in range(2, folders + 1))
    return config[:block.end()] + copies + config[block.end():]


def drop_letters(folder: Path, count: int, folders: int = 1) -> None:
    drops = [folder / "var" / ("drop" if k == 1 else f"drop-{k}") for k in range(1, folders + 1)]
    for drop in drops:
        drop.mkdir(parents=True, exist_ok=True)
    settled = time.time() - 60  # older than settle_seconds: collected at the first poll
    for n in range(count):
        path = drops[n % folders] / f"letter-{n:05d}.xml"
        path.write_bytes(letter(CVR, n))
        os.utime(path, (settled, settled))


def start_sandbox(config: Path, folder: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([*POSTBUD, "-c", str(config), "sandbox"], cwd=folder, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(b"smtp "):
            return proc
    raise SystemExit(f"the sandbox did not start (exit {proc.wait()})")


def approve(config_path: Path) -> None:
    """What the sandbox's start-up does in `make run`: vouch for the demo recipients."""
    import asyncio

    from core.configfile import load_config
    from delivery.recipients import load_recipients
    from postbud.runtime import Runtime
    from sandbox.demo import approve_demo_recipients

    config = load_config(config_path)
    runtime = Runtime.create(config)
    try:
        assert config.recipients.file is not None
        approve_demo_recipients(runtime.store, config, load_recipients(config.recipients.file))
    finally:
        asyncio.run(runtime.aclose())


def run_daemons(config: Path, folder: Path, profile: Path | None, spy: Path | None = None,
                instances: int = 1, *, gil: bool = False) -> dict[str, Any]:
    """`postbud run --once` in `instances` processes at once: wall until the last exits, their CPU
    (parse workers included), the highest peak RSS of one; wall_N and cpu_N of instance N."""
    prefix = [sys.executable, "-m", "cProfile", "-o", str(profile)] if profile else [sys.executable]

    def spying(n: int) -> list[str]:  # every thread and the parse workers, on CPU (cProfile: the loop's thread only)
        out = spy if n == 0 or spy is None else spy.with_name(f"{spy.stem}-{n + 1}{spy.suffix}")
        return [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "speedscope", "--subprocesses",
                *(["--gil"] if gil else []), "-o", str(out), "--", sys.executable]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started, began = time.perf_counter(), time.time()
    procs = []
    for n in range(instances):
        first = spying(n) if spy is not None else prefix if n == 0 else [sys.executable]  # py-spy: FILE, FILE-2, ...
        cmd = [*first, *POSTBUD[1:], "-c", str(config), "run", "--once"]
        log = (folder / ("daemon.log" if n == 0 else f"daemon-{n + 1}.log")).open("wb")
        # not in `folder`: `python -m cProfile` puts the working folder first on sys.path (its rules/)
        # Each in a session of its own, as separate services are: the kernel's autogroup scheduling
        # (/proc/sys/kernel/sched_autogroup_enabled) gives one session one share of the CPU, so
        # instances started in this one would share one share and two could never get more than one.
        procs.append(subprocess.Popen(cmd, cwd=folder / "var", stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))
    try:
        return _measure(procs, folder, started, began, before, spied=spy is not None)
    finally:
        for proc in procs:  # in their own sessions: a Ctrl-C here does not reach them
            if proc.returncode is None:
                proc.terminate()


def _measure(procs: list[subprocess.Popen[bytes]], folder: Path, started: float, began: float,
             before: resource.struct_rusage, *, spied: bool) -> dict[str, Any]:
    instances = len(procs)
    peak_kb = 0
    cpu_seen: list[tuple[float, float]] = []  # (time, CPU seconds) of the first daemon process itself
    helpers: dict[int, float] = {}  # the first daemon's helper processes (parse workers, ...): CPU last seen
    walls, cpus = [0.0] * instances, [0.0] * instances
    ios: list[dict[str, int]] = [{} for _ in procs]
    while any(proc.returncode is None for proc in procs):
        for n, proc in enumerate(procs):
            if proc.returncode is not None:
                continue
            try:
                hwm = re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{proc.pid}/status").read_text())
                peak_kb = max(peak_kb, int(hwm.group(1)) if hwm else 0)
                if proc is procs[0] and not spied:  # under py-spy procs[0] is py-spy's own process
                    cpu_seen.append((time.time(), process_cpu(proc.pid)))
                    descendants_cpu(proc.pid, helpers)
            except (OSError, ValueError, IndexError):
                pass
            # exited but not reaped yet: its I/O counters, then wait4 (not poll()) for each instance's
            # own CPU (its reaped parse workers included)
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                continue
            with contextlib.suppress(OSError):
                ios[n] = process_io(proc.pid)
            pid, status, usage = os.wait4(proc.pid, 0)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                walls[n], cpus[n] = time.perf_counter() - started, usage.ru_utime + usage.ru_stime
        time.sleep(0.05)
    wall, ended = time.perf_counter() - started, time.time()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    failed = [n + 1 for n, proc in enumerate(procs) if proc.returncode != 0]
    if failed:
        raise SystemExit(f"postbud run --once (instance {failed}) failed; see {folder}/daemon*.log")
    cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    return {"wall": wall, "cpu": cpu, "peak_mb": peak_kb / 1024, "began": began, "ended": ended, "cpu_seen": cpu_seen,
            "io": {name: sum(io.get(name, 0) for io in ios) for name in ("wchar", "syscw", "rchar", "write_bytes")},
            "helpers_cpu": sum(helpers.values()),
            **{f"wall_{n + 1}": w for n, w in enumerate(walls)}, **{f"cpu_{n + 1}": c for n, c in enumerate(cpus)}}


def server_cpu(name: str = "postgres") -> float:
    """CPU seconds used so far by every process called `name` (a local PostgreSQL server: its live
    backends and helpers, and what the postmaster reaped of ended ones); whoever else uses the server
    is counted too."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat[stat.index("(") + 1:stat.rindex(")")].startswith(name):
            fields = stat.rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def fresh_database(url: str | None, *, keep: bool) -> Iterator[str | None]:
    """A new PostgreSQL database on `url`'s server for this run (None: SQLite in the run folder)."""
    if url is None:
        yield None
        return
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(url)
    name = f"postbud_e2e_{os.getpid()}_{int(time.time())}"
    plain = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        if not keep:
            with psycopg.connect(plain, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def outcome(config: Path) -> dict[str, object]:
    """Statuses, and collection-to-delivery per delivered letter, from the trace."""
    from sqlalchemy import create_engine, text

    from core.configfile import load_config
    from core.storage.db import normalize_url

    engine = create_engine(normalize_url(load_config(config).database_url))
    with engine.connect() as conn:
        counted = conn.execute(text("SELECT status, count(*) FROM message GROUP BY status")).all()
        statuses = {str(status): int(n) for status, n in counted}
        rows = conn.execute(text(
            "SELECT c.message_id, min(c.at), max(d.at) FROM trace_event c JOIN trace_event d "
            "ON d.message_id = c.message_id AND d.kind = 'delivered' WHERE c.kind = 'collected' "
            "GROUP BY c.message_id")).all()
        span = conn.execute(text("SELECT min(at), max(at) FROM trace_event WHERE kind IN ('collected', 'delivered')")).one()
        stages = {str(kind): (first, last) for kind, first, last in conn.execute(text(
            "SELECT kind, min(at), max(at) FROM trace_event WHERE kind IN ('collected', 'routed', 'delivered') "
            "GROUP BY kind")).all()}
    engine.dispose()
    from datetime import datetime, timezone

    def when(value: object) -> datetime:
        return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))

    latencies = sorted((when(d) - when(c)).total_seconds() for _, c, d in rows)
    window = (when(span[1]) - when(span[0])).total_seconds() if span[0] else 0.0
    spans = {kind: (when(last) - when(first)).total_seconds() for kind, (first, last) in stages.items()}
    # epoch seconds of the first collection and the last delivery (the trace's times are UTC)
    def epoch(value: object) -> float:
        moment = when(value)
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()

    edges = (epoch(span[0]), epoch(span[1])) if span[0] else None
    return {"statuses": statuses, "latencies": latencies, "window": window, "stages": spans, "edges": edges}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--letters", type=int, default=2000)
    parser.add_argument("--profile", type=Path, help="cProfile the daemon into this file")
    parser.add_argument("--py-spy", type=Path, dest="spy",
                        help="sample the daemon's threads with py-spy (pip install py-spy) into this speedscope file")
    parser.add_argument("--gil", action="store_true", help="with --py-spy: only samples of the thread holding the GIL")
    parser.add_argument("--keep", type=Path, help="work in this (new) folder and keep it")
    parser.add_argument("--relay", help='"postfix" (set up and started on loopback), or HOST:PORT of an SMTP '
                                        "relay with STARTTLS, instead of the sandbox's mail server")
    parser.add_argument("--relay-ca", type=Path, help="CA file that verifies the relay's certificate")
    parser.add_argument("--database", help="postgresql://... server to make a fresh database on (default SQLite)")
    parser.add_argument("--instances", type=int, default=1, help="daemons running at once (PostgreSQL)")
    parser.add_argument("--folders", type=int, default=1, help="drop folders the letters are spread over")
    parser.add_argument("--claim-batch", type=int, help="[collector] claim_batch: mailboxes an instance leases "
                                                        "at a time (the sandbox has 3 besides the drop folders)")
    args = parser.parse_args()
    if args.instances < 1 or args.folders < 1 or args.letters < 0 or (args.claim_batch or 1) < 1:
        parser.error("--instances, --folders and --claim-batch must be at least 1, --letters not negative")
    if args.instances > 1 and not (args.database or "").startswith(("postgresql:", "postgres:")):
        parser.error("--instances above 1 needs --database postgresql://... (SQLite serves one instance)")
    if args.gil and args.spy is None:
        parser.error("--gil samples with py-spy: give --py-spy FILE too")
    relay, relay_ca, sink_log = args.relay, args.relay_ca, None
    if relay == "postfix":
        from bench import postfix_relay

        relay, relay_ca = postfix_relay.start()
        sink_log = postfix_relay.accepted_since(0)[1]
    folder = args.keep or Path(tempfile.mkdtemp(prefix="postbud-e2e-"))
    folder.mkdir(parents=True, exist_ok=True)
    with fresh_database(args.database, keep=args.keep is not None) as database:
        sandbox_cfg, daemon_cfg = write_configs(folder, relay, relay_ca, database, args.folders, args.claim_batch)
        t0 = time.perf_counter()
        drop_letters(folder, args.letters, args.folders)
        print(f"{args.letters} letters written in {time.perf_counter() - t0:.1f} s; folder {folder}")
        sandbox = start_sandbox(sandbox_cfg, folder)
        try:
            approve(daemon_cfg)
            load = os.getloadavg()[0]
            sandbox_cpu, pg_cpu = process_cpu(sandbox.pid), server_cpu()
            figures = run_daemons(daemon_cfg, folder, args.profile, args.spy, args.instances, gil=args.gil)
            sandbox_cpu, pg_cpu = process_cpu(sandbox.pid) - sandbox_cpu, server_cpu() - pg_cpu
        finally:
            sandbox.send_signal(signal.SIGINT)
            try:
                sandbox.wait(30)
            except subprocess.TimeoutExpired:
                sandbox.kill()
        result = outcome(daemon_cfg)
    statuses: dict[str, int] = result["statuses"]  # type: ignore[assignment]
    lat: list[float] = result["latencies"]  # type: ignore[assignment]
    delivered = int(statuses.get("delivered", 0))
    total = sum(int(v) for v in statuses.values())
    if sink_log is not None:
        time.sleep(2)  # postfix's discard agent logs just after the queue manager hands each letter over
        received = f"; postfix discarded {postfix_relay.accepted_since(sink_log)[0]}"
    elif relay is None:
        received = f"; mail server kept {len(list((folder / 'var' / 'sandbox' / 'mail').glob('*.eml')))}"
    else:
        received = ""
    print(f"load average at start {load:.1f} on {os.cpu_count()} cores; {args.instances} instance(s) on "
          f"{'PostgreSQL' if database else 'SQLite'}, relay {args.relay or 'the sandbox mail server'}")
    print(f"messages {total}: {statuses}{received}")
    print(f"run --once wall {figures['wall']:.1f} s (collect->deliver window {result['window']:.1f} s), "
          f"CPU {figures['cpu']:.1f} s (the sandbox's mail server and providers {sandbox_cpu:.1f} s more), peak RSS {figures['peak_mb']:.0f} MB")
    if args.instances > 1:
        print("each instance: " + "; ".join(f"{n} wall {figures[f'wall_{n}']:.1f} s, CPU {figures[f'cpu_{n}']:.1f} s"
                                            for n in range(1, args.instances + 1)))
    if database:
        print(f"PostgreSQL server CPU meanwhile {pg_cpu:.1f} s (0 if not on this machine; its other users count too)")
    print(f"delivered {delivered}: {delivered / figures['wall']:.0f} letters/s wall, "
          f"{delivered / figures['cpu']:.0f} per CPU-second ({1000 * figures['cpu'] / max(1, delivered):.1f} ms "
          f"CPU per letter)")
    io: dict[str, int] = figures["io"]
    if io["syscw"] and delivered:  # under py-spy these are py-spy's own
        print(f"daemon I/O (/proc/PID/io at exit, parse workers included): written {io['wchar'] / 1e6:.0f} MB in "
              f"{io['syscw']} write calls ({io['wchar'] / 1000 / delivered:.0f} KB, {io['syscw'] / delivered:.0f} "
              f"calls per letter; files, sockets and pipes), {io['write_bytes'] / 1e6:.0f} MB to storage; "
              f"read {io['rchar'] / 1e6:.0f} MB")
    edges: tuple[float, float] | None = result["edges"]  # type: ignore[assignment]
    if edges is not None:
        seen: list[tuple[float, float]] = figures["cpu_seen"]

        def cpu_at(moment: float) -> float:  # the daemon process's CPU seconds at the last sample before
            return max((cpu for at, cpu in seen if at <= moment), default=0.0)

        closing_cpu = (seen[-1][1] if seen else 0.0) - cpu_at(edges[1])  # 0 under --py-spy (not sampled)
        print(f"start-up (process start -> first letter collected) {edges[0] - figures['began']:.2f} s wall, "
              f"{cpu_at(edges[0]):.2f} s CPU; closing (last letter delivered -> exit) "
              f"{figures['ended'] - edges[1]:.2f} s wall, {closing_cpu:.2f} s CPU (the daemon process itself, "
              f"sampled every 50 ms)")
        if seen:
            main_cpu, helpers_cpu = seen[-1][1], figures["helpers_cpu"]
            print(f"main process CPU {main_cpu:.2f} s ({1000 * main_cpu / max(1, delivered):.2f} ms per letter); "
                  f"its helper processes (parse workers, ...) {helpers_cpu:.2f} s "
                  f"({1000 * helpers_cpu / max(1, delivered):.2f} ms per letter; sampled every 50 ms)")
    spans: dict[str, float] = result["stages"]  # type: ignore[assignment]
    print("first to last event per stage (stages overlap): "
          + ", ".join(f"{kind} {seconds:.1f} s" for kind, seconds in sorted(spans.items())))
    if lat:
        p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
        print(f"collection to delivery: p50 {statistics.median(lat):.1f} s, p95 {p95:.1f} s, max {lat[-1]:.1f} s")
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
