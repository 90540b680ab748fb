"""Chaos harness: letters from a drop folder and the three sandbox providers, `kill -9` at random moments.

The fake providers (NgDP, e-Boks, mit.dk, NemSMS among their letters) and the TLS mail server run in
this process and outlive every daemon; `postbud run` runs as a child on SQLite, is killed with SIGKILL
at random moments (inside collect, route, deliver and acknowledge alike) and started again, then left
to finish. The figures then come from the providers, the mail server, the database and the disk:

    offered, collected, delivered, failed, lost, stored twice, re-sends (same Message-ID), letters with
    different Message-IDs for one recipient, never acknowledged, plaintext bytes at rest.

    .venv/bin/python -m bench.chaos [--letters 2000] [--kills 50] [--seed 1] [--folder DIR] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.config import Config  # noqa: E402
from core.configfile import load_config  # noqa: E402
from delivery.channels import delivery_token  # noqa: E402
from delivery.compose import message_id_for  # noqa: E402
from delivery.recipients import load_recipients  # noqa: E402
from postbud.runtime import open_store  # noqa: E402
from sandbox.fake import FakeProvider  # noqa: E402
from sandbox.demo import approve_demo_recipients, write_demo_recipients, write_secrets  # noqa: E402
from sandbox.mailserver import SandboxMailServer, ensure_demo_recipient  # noqa: E402
from sandbox.run import serve_sandbox  # noqa: E402

CVR = "12345678"
PROVIDERS = ("ngdp", "eboks", "mitdk")


@dataclass
class Report:
    letters_offered: int = 0
    offered_by_source: dict[str, int] = field(default_factory=dict)
    nemsms_offered: int = 0
    kills: int = 0
    kills_by_stage: dict[str, int] = field(default_factory=dict)
    kills_inside_acknowledge: int = 0  # an acknowledgement begun (intent written) and not recorded
    kills_inside_send: int = 0  # a send to the relay started and its outcome not recorded
    collected: int = 0
    delivered: int = 0
    failed: int = 0
    held_or_quarantined: int = 0
    lost: int = 0
    stored_twice: int = 0
    resends_same_message_id: int = 0
    different_message_ids: int = 0
    never_acknowledged: int = 0
    acknowledged_twice: int = 0
    plaintext_bytes_at_rest: int = 0
    settled_in_doubt: int = 0
    seconds: float = 0.0

    def table(self) -> str:
        rows = [("letters offered", f"{self.letters_offered} ({', '.join(f'{k} {v}' for k, v in self.offered_by_source.items())}; NemSMS {self.nemsms_offered})"),
                ("kill -9", f"{self.kills} (last log line: {', '.join(f'{k} {v}' for k, v in sorted(self.kills_by_stage.items()))})"),
                ("kills inside an acknowledgement / inside a send", f"{self.kills_inside_acknowledge} / {self.kills_inside_send}"),
                ("collected", self.collected), ("delivered", self.delivered), ("failed", self.failed),
                ("held or quarantined", self.held_or_quarantined), ("lost", self.lost),
                ("rows stored twice", self.stored_twice),
                ("re-sends (same Message-ID)", self.resends_same_message_id),
                ("different Message-IDs for one letter and recipient", self.different_message_ids),
                ("letters never acknowledged", self.never_acknowledged),
                ("letters acknowledged twice", self.acknowledged_twice),
                ("plaintext bytes at rest", self.plaintext_bytes_at_rest),
                ("settled in doubt", self.settled_in_doubt), ("wall time", f"{self.seconds:.0f} s")]
        return "| figure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def write_config(run: Path, ports: dict[str, int]) -> Path:
    """config.example.toml with the sandbox run by us, our ports, short intervals, no rules, model or OIDC."""
    text = (REPO / "config.example.toml").read_text(encoding="utf-8")
    for name, default in (("ngdp", 18443), ("eboks", 18444), ("mitdk", 18445), ("smtp", 18025), ("post", 18446),
                          ("idp", 18447)):
        text = text.replace(str(default), str(ports[name]))
    text = text.replace('listen = "127.0.0.1:9464"', f'listen = "127.0.0.1:{ports["http"]}"')
    text = text.replace('approval_base_url = "http://127.0.0.1:9464"',
                        f'approval_base_url = "http://127.0.0.1:{ports["http"]}"')
    text = re.sub(r"(?m)^(\s*poll_interval_seconds = )[0-9.]+", r"\g<1>1.0", text)
    text = re.sub(r"(?m)^((?:route|deliver)_interval_seconds = )[0-9.]+", r"\g<1>0.5", text)
    text = re.sub(r"(?m)^(jitter_seconds = )[0-9.]+", r"\g<1>0.0", text)
    text = re.sub(r"(?m)^(\s*settle_seconds = )[0-9.]+", r"\g<1>0.0", text)
    text = re.sub(r'(?m)^directory = "rules/examples".*$', "", text)  # everything to the default route
    text = re.sub(r"(?m)^(\[model\]\n)enabled = true", r"\1enabled = false", text)
    text = re.sub(r"(?m)^(\[sandbox\]\n)enabled = true", r"\1enabled = false", text)
    # no identity provider either: the sandbox that would play it (and write its client secret) is ours
    text = re.sub(r"(?ms)^\[console\.oidc\]\n.*?(?=^\[)", "", text)
    path = run / "postbud.toml"
    path.write_text(text, encoding="utf-8")
    return path


def drop_letters(drop: Path, numbers: range, seed: int, needles: list[bytes]) -> None:
    """E-mails into the drop folder, written aside and renamed, each with a secret line of its own."""
    drop.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        needle = f"Fortroligt chaos-{seed}-{n}-{secrets.token_hex(6)}".encode()
        needles.append(needle)
        body = (f"From: Skattestyrelsen <noreply@skat.dk>\nTo: post@eksempel.dk\nSubject: Moms {n}\n"
                f"Message-ID: <chaos-{seed}-{n}@skat.dk>\nDate: Mon, 23 Nov 2026 10:00:00 +0000\n\n"
                f"{needle.decode()}\n").encode()
        tmp = drop / f".{n}.tmp"
        tmp.write_bytes(body)
        os.replace(tmp, drop / f"letter-{n}.eml")


def _stage(log: Path, seen: int) -> str:
    """Which stage the daemon was in when killed: the logger of its last line since `seen`."""
    lines = log.read_bytes()[seen:].decode("utf-8", "replace").splitlines()
    for line in reversed(lines):
        for stage, marks in (("collect", ("collector.", "connectors.")), ("route", ("router.", "rules.")),
                             ("deliver", ("delivery.",))):
            if any(m in line for m in marks):
                return stage
    return "start-up" if not any("postbud running" in line for line in lines) else "idle"


def _interrupted(run: Path) -> tuple[bool, bool]:
    """Did the kill cut an acknowledgement or a send short? (read from what it left in the database)"""
    try:
        with _db(run) as db:
            acks = db.execute("SELECT count(*) FROM message WHERE ack_requested_at IS NOT NULL "
                              "AND acknowledged_at IS NULL").fetchone()[0]
            sends = db.execute("SELECT count(*) FROM delivery WHERE status = 'sending' "
                               "AND send_started_at IS NOT NULL").fetchone()[0]
    except sqlite3.Error:
        return False, False
    return bool(acks), bool(sends)


async def _running(log: Path, seen: int, timeout: float = 120.0) -> None:
    """Wait until the daemon started since `seen` says it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and b"postbud running" in log.read_bytes()[seen:]:
            return
        await asyncio.sleep(0.05)


async def _daemon(config: Path, log: Path) -> asyncio.subprocess.Process:
    out = log.open("ab")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "postbud", "-c", str(config), "run", stdout=out, stderr=out, cwd=str(REPO),
            env={**os.environ, "PYTHONPATH": str(REPO)})
    finally:
        out.close()


def _db(run: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{run / 'var' / 'postbud.db'}?mode=ro", uri=True, timeout=30)


def _settled(run: Path, offered: int, providers: dict[str, FakeProvider], drop: Path) -> bool:
    try:
        with _db(run) as db:
            total, open_, unacked = db.execute(
                "SELECT count(*), sum(status NOT IN ('delivered','failed','held','quarantined')), "
                "sum(acknowledged_at IS NULL) FROM message").fetchone()
    except sqlite3.Error:
        return False
    pending = sum(len(p.pending()) for p in providers.values())
    files = [p for p in drop.glob("*.eml")]
    return total >= offered and not open_ and not unacked and not pending and not files


async def run_chaos(folder: Path, *, letters: int, kills: int, seed: int, min_up: float = 0.0,
                    max_up: float = 4.0, finish_timeout: float = 900.0) -> Report:
    rng = random.Random(seed)
    started = time.monotonic()
    run = folder
    names = ["ngdp", "eboks", "mitdk", "smtp", "http", "post", "idp"]
    ports = dict(zip(names, _free_ports(len(names)), strict=True))
    config_path = write_config(run, ports)
    config = load_config(config_path)
    sandbox_dir = run / "var" / "sandbox"
    per_source = letters // 4
    handle = await serve_sandbox(sandbox_dir, [CVR], messages_per_cvr=per_source, seed=0,
                                 ports={k: ports[k] for k in PROVIDERS},
                                 names={org.cvr: org.name for org in config.organisations})
    mail = SandboxMailServer(sandbox_dir / "mail", sandbox_dir / "ca", port=ports["smtp"])
    await mail.start()
    report = Report()
    log = run / "daemon.log"
    try:
        write_secrets(sandbox_dir / "secrets", handle)
        keys = ensure_demo_recipient(sandbox_dir / "keys")
        write_demo_recipients(sandbox_dir / "recipients.toml", [CVR], keys)
        store = open_store(config)
        approve_demo_recipients(store, config, load_recipients(sandbox_dir / "recipients.toml"))
        store.dispose()
        fakes = {name: e.fake for name, e in handle.endpoints.items()}
        offered_keys = {name: {s.key for s in fake.pending()} for name, fake in fakes.items()}
        report.nemsms_offered = sum(1 for f in fakes.values() for s in f.pending()
                                    if getattr(getattr(s, "message", None), "message_type", "") == "NEMSMS")
        drop, needles = run / "var" / "drop", list[bytes]()
        n_drop = letters - sum(len(k) for k in offered_keys.values())
        report.offered_by_source = {"drop": n_drop, **{k: len(v) for k, v in offered_keys.items()}}
        report.letters_offered = letters
        stages: Counter[str] = Counter()
        # half the drop letters now, the rest spread over the restarts
        drop_letters(drop, range(n_drop // 2), seed, needles)
        later = list(range(n_drop // 2, n_drop))
        for k in range(kills):
            seen = log.stat().st_size if log.exists() else 0
            proc = await _daemon(config_path, log)
            if rng.random() < 0.1:  # now and then during start-up (migrations, connector log-on)
                await asyncio.sleep(rng.uniform(0.0, 2.0))
            else:
                await _running(log, seen)
                await asyncio.sleep(rng.uniform(min_up, max_up))
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            stages[_stage(log, seen)] += 1
            ack, send = _interrupted(run)
            report.kills_inside_acknowledge += ack
            report.kills_inside_send += send
            batch = later[: max(1, len(later) // max(1, kills - k))] if later else []
            later = later[len(batch):]
            if batch:
                drop_letters(drop, range(batch[0], batch[-1] + 1), seed, needles)
        if later:
            drop_letters(drop, range(later[0], later[-1] + 1), seed, needles)
        report.kills, report.kills_by_stage = kills, dict(stages)
        proc = await _daemon(config_path, log)
        deadline = time.monotonic() + finish_timeout
        while time.monotonic() < deadline and not _settled(run, letters, fakes, drop):
            await asyncio.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        _measure(report, run, config, fakes, offered_keys, drop, needles)
    finally:
        await mail.stop()
        await handle.aclose()
    report.seconds = time.monotonic() - started
    return report


def _measure(report: Report, run: Path, config: Config, fakes: dict[str, FakeProvider],
             offered_keys: dict[str, set[str]], drop: Path, needles: list[bytes]) -> None:
    domain = config.delivery.message_id_domain
    with _db(run) as db:
        messages = db.execute("SELECT id, provider, provider_message_id, status, acknowledged_at FROM message").fetchall()
        deliveries = db.execute("SELECT message_id, recipient, idempotency_key, status FROM delivery").fetchall()
        acks = db.execute("SELECT message_id, count(*) FROM trace_event WHERE kind = 'acknowledged' "
                          "GROUP BY message_id").fetchall()
        report.settled_in_doubt = db.execute(
            "SELECT count(*) FROM trace_event WHERE kind = 'delivery_settled_in_doubt'").fetchone()[0]
    report.collected = len({(m[1], m[2]) for m in messages})
    report.stored_twice = len(messages) - report.collected
    by_status = Counter(m[3] for m in messages)
    report.delivered, report.failed = by_status["delivered"], by_status["failed"]
    report.held_or_quarantined = by_status["held"] + by_status["quarantined"]
    # what the recipients' mail server holds, by Message-ID
    received: Counter[str] = Counter()
    for eml in (run / "var" / "sandbox" / "mail").glob("*.eml"):
        data = eml.read_bytes()
        found = re.search(rb"^Message-ID: (<[^>]+>)", data, re.MULTILINE | re.IGNORECASE)
        if found:
            received[found.group(1).decode()] += 1
    report.resends_same_message_id = sum(n - 1 for n in received.values())
    letter_of = {m[0]: (m[1], m[2]) for m in messages}
    ids_per_target: dict[tuple[object, str], set[str]] = defaultdict(set)
    reached: set[str] = set()
    for message_id, recipient, key, _status in deliveries:
        mid = message_id_for(delivery_token(key), domain=domain)
        if mid in received:
            ids_per_target[(letter_of.get(message_id), recipient)].add(mid)
            reached.add(message_id)
    report.different_message_ids = sum(1 for ids in ids_per_target.values() if len(ids) > 1)
    stored = {(m[1], m[2]) for m in messages}
    not_stored = sum(1 for p, keys in offered_keys.items() for k in keys if (p, k) not in stored)
    not_stored += max(0, report.offered_by_source["drop"] - sum(1 for m in messages if m[1] == "folder"))
    unreached = sum(1 for m in messages if m[3] == "delivered" and m[0] not in reached)
    unreached += sum(1 for m in messages if m[3] not in ("delivered", "failed", "held", "quarantined"))
    report.lost = not_stored + unreached
    unacked_rows = sum(1 for m in messages if m[4] is None)
    at_provider = sum(len(f.pending()) for f in fakes.values())
    report.never_acknowledged = unacked_rows + at_provider + len(list(drop.glob("*.eml")))
    report.acknowledged_twice = sum(1 for _, n in acks if n > 1)
    report.plaintext_bytes_at_rest = _plaintext(run, needles)


def _plaintext(run: Path, needles: list[bytes]) -> int:
    """Bytes of the drop letters' secret lines in any file of the run (database, WAL, drop folder, logs,
    the mail the recipients got), the demo keys aside."""
    total = 0
    for path in run.rglob("*"):
        if not path.is_file() or "keys" in path.parts:
            continue
        data = path.read_bytes()
        total += sum(len(n) * data.count(n) for n in needles if n in data)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--letters", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-up", type=float, default=4.0,
                        help="longest a daemon runs after its start-up before it is killed (s)")
    parser.add_argument("--folder", type=Path, default=None, help="keep the run here (default: a temp dir)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="postbud-chaos-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        report = asyncio.run(run_chaos(folder, letters=args.letters, kills=args.kills, seed=args.seed,
                                       max_up=args.max_up))
    finally:
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(asdict(report), indent=2) if args.json else report.table())
    bad = report.lost or report.failed or report.different_message_ids or report.never_acknowledged \
        or report.plaintext_bytes_at_rest or report.stored_twice
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
