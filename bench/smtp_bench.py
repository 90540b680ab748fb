"""The e-mail channel's own CPU per letter: composing (S/MIME) and sending over kept-open TLS connections.

A letter like the end-to-end benchmark's (a MeMo letter with a 3 KB one-page PDF, ~7 KB encrypted)
is composed N times (`EmailChannel.compose`, as the delivery worker's thread does), then sent N times
through an SmtpPool of `--connections` connections with twice as many lanes, as the worker sends,
to the sandbox's mail server (aiosmtpd, its STARTTLS and bulk DATA) in its own process, or with
`--relay postfix` to Debian's postfix on loopback (bench/postfix_relay.py: root, started and left
running; it discards what it queued, and the figure says how many it logged). Reported: this
process's CPU milliseconds per letter for each half, which other load on the machine barely moves.

    .venv/bin/python -m bench.smtp_bench [--letters 2000] [--connections 4] [--relay postfix] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiosmtpd.smtp import SMTP, Envelope, Session

from core.domain import Document, DocumentKind, File, MessageType, NormalizedMessage, Party
from delivery.channels import EmailChannel, Outbound, delivery_token
from delivery.recipients import Recipient
from delivery.smtp import SmtpSettings
from delivery.smtp_pool import SmtpPool
from sandbox.mailserver import ensure_demo_recipient, serve_smtp, server_tls_context
from sandbox.testca import LocalCA


class Discarding:
    """Accepts and forgets: the figure is the sender's, not the server's disk."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 OK queued"


def _server(ca_dir: str, ports: Any, stop: Any) -> None:
    async def main() -> None:
        ctx = server_tls_context(LocalCA(Path(ca_dir)))
        server = await serve_smtp(Discarding(), tls_context=ctx)
        ports.put(server.sockets[0].getsockname()[1])
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        server.close()

    asyncio.run(main())


def letter(i: int) -> NormalizedMessage:
    pdf = b"%PDF-1.4\n" + os.urandom(1500).hex().encode() + b"\n%%EOF\n"
    return NormalizedMessage(
        message_id=f"memo-{i}", message_type=MessageType.DIGITALPOST, title=f"Brev nummer {i} om din sag",
        sender=Party(id="12345678", id_type="CVR", name="Gældsstyrelsen"),
        recipient=Party(id="87654321", id_type="CVR"), format="memo-1.2",
        documents=(Document(DocumentKind.MAIN, (File(f"brev-{i}.pdf", "application/pdf", pdf),)),),
        text="Kære modtager " * 100,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--letters", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--relay", choices=["postfix"], help="send to Debian's postfix instead (root)")
    parser.add_argument("--profile", type=Path, help="cProfile (thread CPU time) of compose and send into this file")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="postbud-smtp-bench-"))
    keys = ensure_demo_recipient(tmp / "keys")
    profiler = cProfile.Profile(time.thread_time) if args.profile else None
    if args.relay == "postfix":
        from bench import postfix_relay

        relay, ca_file = postfix_relay.start()
        before = postfix_relay.accepted_since(0)[1]
        asyncio.run(run(args.letters, args.connections, int(relay.rsplit(":", 1)[1]), ca_file, keys.smime_cert,
                        profiler))
        time.sleep(2)  # the discard agent logs just after the queue manager hands each letter over
        print(f"postfix discarded {postfix_relay.accepted_since(before)[0]} of {args.letters + 1}")
    else:
        ca = LocalCA(tmp / "ca")
        ctx = mp.get_context("spawn")
        ports, stop = ctx.Queue(), ctx.Event()
        server = ctx.Process(target=_server, args=(str(tmp / "ca"), ports, stop), daemon=True)
        server.start()
        try:
            asyncio.run(run(args.letters, args.connections, ports.get(timeout=30), ca.cert_path, keys.smime_cert,
                            profiler))
        finally:
            stop.set()
            server.join(10)
    if profiler is not None:
        profiler.dump_stats(str(args.profile))


async def run(n: int, connections: int, port: int, ca_file: Path, cert: Path,
              profiler: cProfile.Profile | None) -> None:
    pool = SmtpPool(SmtpSettings(host="127.0.0.1", port=port, ca_file=ca_file, timeout=30), size=connections)
    channel = EmailChannel(pool, from_address="postbud@localhost", message_id_domain="postbud.example")
    bob = Recipient(id="bob", name="Bob", email="bob@example.com", smime_cert=cert)
    key = cert.read_bytes()
    received = dt.datetime(2026, 5, 4, 8, 0, tzinfo=dt.UTC)
    items = [Outbound(delivery_token(f"{i}:bob:email"), letter(i), bob, key, f"trace-{i}", received)
             for i in range(n)]
    await channel.send(channel.compose(items[0]))  # connect one connection: not part of the figure

    if profiler is not None:
        profiler.enable()
    cpu = time.thread_time()
    composed = [channel.compose(item) for item in items]
    compose_cpu = time.thread_time() - cpu
    queue: asyncio.Queue[Outbound] = asyncio.Queue()
    for item in composed:
        queue.put_nowait(item)

    async def lane() -> None:
        while not queue.empty():
            await channel.send(queue.get_nowait())

    wall, cpu = time.perf_counter(), time.thread_time()
    await asyncio.gather(*(lane() for _ in range(2 * connections)))
    wall, send_cpu = time.perf_counter() - wall, time.thread_time() - cpu
    if profiler is not None:
        profiler.disable()
    await channel.aclose()
    size = sum(len(c.composed.data) for c in composed if c.composed is not None) / n
    print(f"{n} letters of {size / 1024:.1f} KB over {connections} connections: compose {1000 * compose_cpu / n:.3f} "
          f"ms CPU/letter, send {1000 * send_cpu / n:.3f} ms CPU/letter ({n / wall:.0f} letters/s wall); "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
