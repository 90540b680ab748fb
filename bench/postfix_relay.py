"""Debian's postfix on loopback as the benchmark's relay: STARTTLS required, every letter discarded.

What a company runs in front of postbud, for `python -m bench.e2e --relay postfix` (never in CI: it
reconfigures the machine's postfix). Needs root and `apt-get install -y postfix`
(DEBIAN_FRONTEND=noninteractive). Listens on 127.0.0.1:25 only, relays for 127.0.0.0/8 only, offers
STARTTLS with a self-signed certificate for 127.0.0.1 and refuses mail before it, queues each letter
as it would any (written and synced to its queue before it says 250) and hands it to the discard
transport.

    python -m bench.postfix_relay start    # prints HOST:PORT and the CA file to verify it with
    python -m bench.postfix_relay stop
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

CERT = Path("/etc/postfix/postbud-bench-cert.pem")
KEY = Path("/etc/postfix/postbud-bench-key.pem")
ADDRESS = ("127.0.0.1", 25)
SETTINGS = {
    "inet_interfaces": "loopback-only",
    "inet_protocols": "ipv4",
    "mynetworks": "127.0.0.0/8",
    "mydestination": "",
    "local_recipient_maps": "",
    "smtpd_relay_restrictions": "permit_mynetworks, reject",
    "default_transport": "discard:postbud benchmark sink",
    "relay_transport": "discard:postbud benchmark sink",
    "smtpd_tls_security_level": "encrypt",  # STARTTLS before MAIL, or nothing
    "smtpd_tls_cert_file": str(CERT),
    "smtpd_tls_key_file": str(KEY),
    "smtpd_tls_mandatory_protocols": ">=TLSv1.2",
    "smtpd_tls_loglevel": "0",
    "smtp_dns_support_level": "disabled",
    "maillog_file": "/var/log/postfix-bench.log",
}


def _run(*cmd: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def _certificate() -> None:
    if CERT.exists() and KEY.exists():
        return
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(KEY), "-out", str(CERT))
    KEY.chmod(0o600)


def _running() -> bool:
    return subprocess.run(["postfix", "status"], capture_output=True, check=False).returncode == 0


def start() -> tuple[str, Path]:
    """Configure and (re)start postfix; returns "HOST:PORT" and the certificate that verifies it."""
    if shutil.which("postfix") is None:
        raise SystemExit("postfix is not installed: DEBIAN_FRONTEND=noninteractive apt-get install -y postfix")
    _certificate()
    _run("postconf", "-e", *(f"{name} = {value}" for name, value in SETTINGS.items()))
    _run("postfix", "check")
    _run("postfix", "reload" if _running() else "start")
    deadline = time.monotonic() + 30
    while not _listening():
        if time.monotonic() > deadline:
            raise SystemExit(f"postfix does not listen on {ADDRESS[0]}:{ADDRESS[1]}; see {SETTINGS['maillog_file']}")
        time.sleep(0.2)
    return f"{ADDRESS[0]}:{ADDRESS[1]}", CERT


def _listening() -> bool:
    import socket

    try:
        with socket.create_connection(ADDRESS, timeout=1) as sock:
            return sock.recv(3) == b"220"
    except OSError:
        return False


def accepted_since(offset: int) -> tuple[int, int]:
    """Letters the sink discarded since byte `offset` of the log, and the log's size now."""
    log = Path(SETTINGS["maillog_file"])
    if not log.exists():
        return 0, 0
    with log.open("rb") as f:
        f.seek(offset)
        text = f.read()
    return text.count(b"status=sent (postbud benchmark sink)"), offset + len(text)


def stop() -> None:
    if _running():
        _run("postfix", "stop")


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["start"]:
            relay, ca = start()
            print(f"{relay} {ca}")
        case ["stop"]:
            stop()
        case _:
            raise SystemExit("usage: python -m bench.postfix_relay start|stop")
