"""A webhook receiver for postbud deliveries (standard library only): verify, deduplicate on id, keep."""

# Run:  POSTBUD_WEBHOOK_SECRET=... python webhook_receiver.py --port 8443 --cert server.pem \
#           --key server-key.pem --seen seen.sqlite3 --out received/
# It answers 2xx only once the envelope is on disk and its id recorded, so postbud retries anything
# that did not arrive; the id record survives restarts, so a re-send is recognised as one.

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sqlite3
import ssl
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPLAY_WINDOW_SECONDS = 300  # a request older or newer than this is refused (replay, clock skew)
MAX_BODY_BYTES = 64 * 1024 * 1024


class Rejected(Exception):
    """Not a genuine, fresh postbud delivery."""


def verify(timestamp: str | None, signature: str | None, body: bytes, secret: bytes,
           now: float | None = None) -> dict[str, Any]:
    """Check the signature and the timestamp; the parsed envelope."""
    if not timestamp or not signature:
        raise Rejected("missing X-Postbud-Timestamp or X-Postbud-Signature")
    try:
        ts = int(timestamp)
    except ValueError:
        raise Rejected("timestamp is not an integer") from None
    expected = "sha256=" + hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise Rejected("signature mismatch")
    if abs((now if now is not None else time.time()) - ts) > REPLAY_WINDOW_SECONDS:
        raise Rejected("timestamp outside the replay window")
    envelope = json.loads(body)
    if not isinstance(envelope, dict) or not isinstance(envelope.get("id"), str):
        raise Rejected("envelope has no id")
    return envelope


class SeenIds:
    """The persistent record of delivery ids already kept (SQLite, one row per id)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, at REAL NOT NULL)")

    def __contains__(self, delivery_id: object) -> bool:
        return self._db.execute("SELECT 1 FROM seen WHERE id = ?", (delivery_id,)).fetchone() is not None

    def add(self, delivery_id: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO seen (id, at) VALUES (?, ?)", (delivery_id, time.time()))


def handler(secret: bytes, seen: SeenIds, out: Path) -> type[BaseHTTPRequestHandler]:
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                return self._answer(413, {"error": "too large"})
            body = self.rfile.read(length)
            try:
                envelope = verify(self.headers.get("X-Postbud-Timestamp"),
                                  self.headers.get("X-Postbud-Signature"), body, secret)
            except (Rejected, ValueError) as exc:
                return self._answer(401, {"error": str(exc)})
            delivery_id = envelope["id"]
            if not delivery_id.isalnum():
                return self._answer(400, {"error": "unexpected id"})
            if delivery_id in seen:
                return self._answer(200, {"duplicate": True})  # a re-send: 2xx, keep nothing twice
            # write, then record: a crash between the two makes the re-send overwrite, not lose
            target = out / f"{delivery_id}.json"
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(body)
            os.replace(tmp, target)
            seen.add(delivery_id)
            self._answer(200, {"kept": delivery_id})

        def _answer(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # ids only would be fine; the default logs client addresses to stderr

    return Receiver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--cert", required=True, type=Path)
    parser.add_argument("--key", required=True, type=Path)
    parser.add_argument("--seen", required=True, type=Path, help="SQLite file of the ids already kept")
    parser.add_argument("--out", required=True, type=Path, help="folder for the kept envelopes")
    args = parser.parse_args()
    secret = os.environ["POSTBUD_WEBHOOK_SECRET"].encode()
    args.out.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer((args.host, args.port), handler(secret, SeenIds(args.seen), args.out))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"listening on https://{args.host}:{server.server_address[1]}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
