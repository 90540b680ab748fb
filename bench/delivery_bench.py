"""Delivery throughput: envelope + encryption + SMTP over STARTTLS to a local aiosmtpd, messages/s.

Each message carries a 200 KB PDF. postbud's side (build, encrypt, send) is pinned to one core;
the aiosmtpd server runs in its own process, so the figure is postbud's and not the Python test
server's (pass --same-process to share one core with it).
"msg per sender CPU-second" divides by the sender's CPU time: what one core sustains when the
server keeps up, and less sensitive to other load on a shared machine than the wall figure.

    .venv/bin/python bench/delivery_bench.py [--messages 300] [--mode smime|pgp|both]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing as mp
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiosmtpd.smtp import SMTP, Envelope, Session

from delivery.envelope import Cover, build_inner
from delivery.pgp import encrypt_pgp
from sandbox.mailserver import ensure_demo_recipient, serve_smtp, server_tls_context
from delivery.smime import encrypt_smime
from delivery.smtp import SmtpSender, SmtpSettings
from core.domain import File
from sandbox.testca import LocalCA

PDF_SIZE = 200 * 1024


class CountingHandler:
    """Accepts and discards: we measure the sender, not the disk."""

    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += 1
        self.bytes += len(envelope.original_content or b"")
        return "250 OK"


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def _server_process(ca_dir: str, port_queue: Any, stop: Any) -> None:
    # not pinned: on a shared machine the scheduler finds the server a free core more often

    async def main() -> None:
        handler = CountingHandler()
        server = await serve_smtp(handler,
                                  tls_context=server_tls_context(LocalCA(Path(ca_dir))))
        port_queue.put(server.sockets[0].getsockname()[1])
        ready = os.times()  # start-up (imports, certificate) is not per-message work
        while not stop.is_set():
            await asyncio.sleep(0.1)
        server.close()
        done = os.times()
        port_queue.put((handler.count, done.user - ready.user, done.system - ready.system))

    asyncio.run(main())


def fake_pdf(size: int) -> bytes:
    """A PDF-looking blob; random bytes so nothing compresses better than a real scan would."""
    head = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    tail = b"\n%%EOF\n"
    return head + os.urandom(size - len(head) - len(tail)) + tail


@dataclass(frozen=True)
class Result:
    mode: str
    messages: int
    seconds: float
    build: float
    encrypt: float
    send: float
    wire_bytes: int
    cpu: float  # sender process CPU seconds: insensitive to other load on a shared machine

    def line(self) -> str:
        per = 1000 / self.messages
        return (f"{self.mode:6s} {self.messages / self.seconds:7.1f} msg/s wall, "
                f"{self.messages / self.cpu:7.1f} msg per sender CPU-second  "
                f"({self.messages} msgs, {self.wire_bytes / self.messages / 1024:.0f} KiB each on "
                f"the wire; sender CPU per message: build {self.build * per:.2f} ms, encrypt "
                f"{self.encrypt * per:.2f} ms, SMTP {self.send * per:.2f} ms)")


async def run_mode(mode: str, n: int, port: int, ca_file: Path, keys_dir: Path, *,
                   pipelined: bool = True) -> Result:
    """Deliver n messages and time it.

    Pipelined, the next message is built and encrypted while the server handles the current one;
    it is still one core, one event loop.
    """
    keys = ensure_demo_recipient(keys_dir)
    key = (keys.smime_cert if mode == "smime" else keys.pgp_public).read_bytes()
    encrypt = encrypt_smime if mode == "smime" else encrypt_pgp
    pdf = File("scan.pdf", "application/pdf", fake_pdf(PDF_SIZE))
    received = dt.datetime.now(dt.UTC)
    cpu_in = {"build": 0.0, "encrypt": 0.0}

    def make(i: int) -> bytes:
        t0 = time.process_time()
        inner = build_inner(
            from_addr="postbud <postbud@example.com>", to_addrs=["demo@example.invalid"],
            message_id=f"<bench-{mode}-{i}@postbud.example>", date=received,
            cover=Cover("Skattestyrelsen", f"Brev {i}", received, f"tt-{i}"), files=[pdf])
        t1 = time.process_time()
        outer = encrypt(inner, key)
        cpu_in["build"] += t1 - t0
        cpu_in["encrypt"] += time.process_time() - t1
        return outer

    wire = 0
    settings = SmtpSettings(host="127.0.0.1", port=port, ca_file=ca_file)
    async with SmtpSender(settings) as smtp:
        # warm up: connect + TLS handshake outside the timed loop
        await smtp.send(b"Subject: warmup\r\n\r\nx\r\n", sender="bench@example.com",
                        recipients=["demo@example.invalid"])
        start, cpu_start = time.perf_counter(), time.process_time()
        if pipelined:
            queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1)

            async def produce() -> None:
                for i in range(n):
                    await queue.put(make(i))
                    await asyncio.sleep(0)  # let the sender pick it up before building the next
                await queue.put(None)

            producer = asyncio.create_task(produce())
            while (outer := await queue.get()) is not None:
                await smtp.send(outer, sender="postbud@example.com",
                                recipients=["demo@example.invalid"])
                wire += len(outer)
            await producer
        else:
            for i in range(n):
                outer = make(i)
                await smtp.send(outer, sender="postbud@example.com",
                                recipients=["demo@example.invalid"])
                wire += len(outer)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    smtp_cpu = cpu - cpu_in["build"] - cpu_in["encrypt"]
    return Result(mode, n, elapsed, cpu_in["build"], cpu_in["encrypt"], smtp_cpu, wire, cpu)


async def bench(modes: list[str], n: int, *, same_process: bool,
                pipelined: bool) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="postbud-bench-") as tmp:
        ca_dir, keys_dir = Path(tmp) / "ca", Path(tmp) / "keys"
        ca = LocalCA(ca_dir)
        results = []
        if same_process:
            server = await serve_smtp(CountingHandler(), tls_context=server_tls_context(ca))
            port = server.sockets[0].getsockname()[1]
            try:
                for mode in modes:
                    results.append(await run_mode(mode, n, port, ca.cert_path, keys_dir,
                                                  pipelined=pipelined))
            finally:
                server.close()
            return results
        ctx = mp.get_context("spawn")
        port_queue, stop = ctx.Queue(), ctx.Event()
        proc = ctx.Process(target=_server_process, args=(str(ca_dir), port_queue, stop))
        proc.start()
        try:
            port = port_queue.get(timeout=30)
            for mode in modes:
                results.append(await run_mode(mode, n, port, ca.cert_path, keys_dir,
                                                  pipelined=pipelined))
        finally:
            stop.set()
            count, user, system = port_queue.get(timeout=30)
            proc.join(timeout=10)
        per = 1000 / max(count, 1)
        print(f"server: {count} messages, CPU each {user * per:.2f} ms user + "
              f"{system * per:.2f} ms system (aiosmtpd with bulk DATA, TLS)")
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--mode", choices=["smime", "pgp", "both"], default="both")
    parser.add_argument("--sequential", action="store_true",
                        help="build+encrypt only after the previous message was accepted")
    parser.add_argument("--same-process", action="store_true",
                        help="run the aiosmtpd server in this process, on the same core")
    args = parser.parse_args()
    _pin(0)
    modes = ["smime", "pgp"] if args.mode == "both" else [args.mode]
    where = "same process/core" if args.same_process else "own process, other core"
    print(f"delivery bench: {args.messages} messages x {PDF_SIZE // 1024} KB PDF, "
          f"STARTTLS to local aiosmtpd ({where}); sender pinned to one core, "
          f"{'sequential' if args.sequential else 'pipelined'}")
    results = asyncio.run(bench(modes, args.messages, same_process=args.same_process,
                                pipelined=not args.sequential))
    for result in results:
        print(result.line())


if __name__ == "__main__":
    main()
