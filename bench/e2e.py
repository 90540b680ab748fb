"""End to end: N MeMo letters in a drop folder plus the sandbox's providers, through collect, route and S/MIME delivery.

What a new user measures: the example config (rules/examples, the demo recipients) in a scratch
folder; the sandbox's fake providers and its TLS mail server run in their own process
(`postbud sandbox`); N letters (MeMo 1.1, one-page PDF with about 2 KB of text, attention to a demo
recipient the example rules route to) wait in `var/drop/`; then `postbud run --once` runs as its own
process and is measured: wall time, its CPU time (with its parse workers), peak RSS, and from the
trace each letter's collection-to-delivery time.

    .venv/bin/python -m bench.e2e [--letters 2000] [--profile out.prof] [--keep DIR]
    .venv/bin/python -m bench.e2e --relay 127.0.0.1:25 --relay-ca /etc/ssl/certs/ca-certificates.crt

`--relay HOST:PORT` delivers to that SMTP server (STARTTLS) instead of the sandbox's, e.g. Debian's
postfix on loopback (not in CI): `apt-get install postfix` ("Local only"), give smtpd a certificate
for 127.0.0.1 that `--relay-ca` verifies (`smtpd_tls_cert_file`, `smtpd_tls_key_file`,
`smtpd_tls_security_level = may` in /etc/postfix/main.cf), route the demo domain to the discard
transport (`transport_maps = inline:{ eksempel.invalid = discard: }`) and `systemctl reload postfix`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.e2e_letters import letter  # noqa: E402

CVR = "12345678"
# The installed entry point, run as a script: `python -m postbud` in the scratch folder would import
# its rules/ folder as the `rules` package.
POSTBUD = [sys.executable, str(Path(sys.executable).parent / "postbud")]
PORTS = {"ngdp": 18443, "eboks": 18444, "mitdk": 18445, "smtp": 18025, "post": 18446, "http": 9464}


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [int(s.getsockname()[1]) for s in sockets]
    for s in sockets:
        s.close()
    return ports


def write_configs(folder: Path, relay: str | None, relay_ca: Path | None) -> tuple[Path, Path]:
    """The example config on free ports: one for the sandbox process, one (sandbox off) for the daemon."""
    text = (ROOT / "config.example.toml").read_text()
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
    (folder / "postbud.toml").write_text(daemon)
    return sandbox, folder / "postbud.toml"


def drop_letters(folder: Path, count: int) -> None:
    drop = folder / "var" / "drop"
    drop.mkdir(parents=True, exist_ok=True)
    settled = time.time() - 60  # older than settle_seconds: collected at the first poll
    for n in range(count):
        path = drop / f"letter-{n:05d}.xml"
        path.write_bytes(letter(CVR, n))
        os.utime(path, (settled, settled))


def start_sandbox(config: Path, folder: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([*POSTBUD, "-c", str(config), "sandbox"], cwd=folder,
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


def run_daemon(config: Path, folder: Path, profile: Path | None, spy: Path | None = None) -> dict[str, float]:
    """`postbud run --once` in its own process: wall, CPU (its parse workers included), peak RSS."""
    prefix = [sys.executable, "-m", "cProfile", "-o", str(profile)] if profile else [sys.executable]
    if spy is not None:  # every thread sampled (cProfile sees the event loop's thread only)
        prefix = [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "speedscope", "--idle",
                  "-o", str(spy), "--", sys.executable]
    cmd = [*prefix, *POSTBUD[1:], "-c", str(config), "run", "--once"]
    log = (folder / "daemon.log").open("wb")
    started = time.perf_counter()
    # not in `folder`: `python -m cProfile` puts the working folder first on sys.path (its rules/)
    proc = subprocess.Popen(cmd, cwd=folder / "var", stdout=log, stderr=subprocess.STDOUT)
    peak_kb = 0
    status_file = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            hwm = re.search(r"VmHWM:\s+(\d+)", status_file.read_text())
            peak_kb = max(peak_kb, int(hwm.group(1)) if hwm else 0)
        except OSError:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - started
    usage = __import__("resource").getrusage(__import__("resource").RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"postbud run --once exited {proc.returncode}; see {folder / 'daemon.log'}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": peak_kb / 1024}


def outcome(config: Path) -> dict[str, object]:
    """Statuses, and collection-to-delivery per delivered letter, from the trace."""
    from sqlalchemy import create_engine, text

    from core.configfile import load_config

    engine = create_engine(load_config(config).database_url)
    with engine.connect() as conn:
        counted = conn.execute(text("SELECT status, count(*) FROM message GROUP BY status")).all()
        statuses = {str(status): int(n) for status, n in counted}
        rows = conn.execute(text(
            "SELECT c.message_id, min(c.at), max(d.at) FROM trace_event c JOIN trace_event d "
            "ON d.message_id = c.message_id AND d.kind = 'delivered' WHERE c.kind = 'collected' "
            "GROUP BY c.message_id")).all()
        span = conn.execute(text("SELECT min(at), max(at) FROM trace_event WHERE kind IN ('collected', 'delivered')")).one()
    engine.dispose()
    from datetime import datetime

    def when(value: object) -> datetime:
        return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))

    latencies = sorted((when(d) - when(c)).total_seconds() for _, c, d in rows)
    window = (when(span[1]) - when(span[0])).total_seconds() if span[0] else 0.0
    return {"statuses": statuses, "latencies": latencies, "window": window}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--letters", type=int, default=2000)
    parser.add_argument("--profile", type=Path, help="cProfile the daemon into this file")
    parser.add_argument("--py-spy", type=Path, dest="spy",
                        help="sample the daemon's threads with py-spy (pip install py-spy) into this speedscope file")
    parser.add_argument("--keep", type=Path, help="work in this (new) folder and keep it")
    parser.add_argument("--relay", help="HOST:PORT of an SMTP relay with STARTTLS instead of the sandbox's")
    parser.add_argument("--relay-ca", type=Path, help="CA file that verifies the relay's certificate")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="postbud-e2e-"))
    folder.mkdir(parents=True, exist_ok=True)
    sandbox_cfg, daemon_cfg = write_configs(folder, args.relay, args.relay_ca)
    t0 = time.perf_counter()
    drop_letters(folder, args.letters)
    print(f"{args.letters} letters written in {time.perf_counter() - t0:.1f} s; folder {folder}")
    sandbox = start_sandbox(sandbox_cfg, folder)
    try:
        approve(daemon_cfg)
        load = os.getloadavg()[0]
        figures = run_daemon(daemon_cfg, folder, args.profile, args.spy)
        print(f"run --once: wall {figures['wall']:.1f} s, CPU {figures['cpu']:.1f} s, peak RSS {figures['peak_mb']:.0f} MB")
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
    mail = len(list((folder / "var" / "sandbox" / "mail").glob("*.eml"))) if args.relay is None else None
    print(f"load average at start {load:.1f} on {os.cpu_count()} cores")
    print(f"messages {total}: {statuses}" + (f"; mail server kept {mail}" if mail is not None else ""))
    print(f"run --once wall {figures['wall']:.1f} s (collect->deliver window {result['window']:.1f} s), "
          f"CPU {figures['cpu']:.1f} s, peak RSS {figures['peak_mb']:.0f} MB")
    print(f"delivered {delivered}: {delivered / figures['wall']:.0f} letters/s wall, "
          f"{delivered / figures['cpu']:.0f} per CPU-second ({1000 * figures['cpu'] / max(1, delivered):.1f} ms "
          f"CPU per letter)")
    if lat:
        p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
        print(f"collection to delivery: p50 {statistics.median(lat):.1f} s, p95 {p95:.1f} s, max {lat[-1]:.1f} s")
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
