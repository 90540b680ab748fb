"""OpenPGP encryption of an inner MIME message as RFC 3156 PGP/MIME (multipart/encrypted)."""

from __future__ import annotations

import secrets
from functools import lru_cache

import pysequoia

from delivery.errors import EncryptionError
from delivery.keys import first_line
from delivery.outer import GENERIC_SUBJECT, WireMessage, outer_headers


@lru_cache(maxsize=256)
def _cert(public_key: bytes) -> pysequoia.Cert:
    # parsing a certificate costs more than encrypting a small message; keys repeat across sends
    return pysequoia.Cert.from_bytes(public_key)


def encrypt_pgp(inner: bytes, public_key: bytes, *, subject: str = GENERIC_SUBJECT) -> WireMessage:
    """The complete outer message: generic headers in clear, `inner` encrypted in the second part.

    RFC 3156 §4: the encrypted body is the canonical (CRLF) MIME entity, ASCII-armored.
    """
    try:
        cert = _cert(public_key)
        # encrypting to binary and armoring separately is ~30% cheaper than armor=True
        binary = pysequoia.encrypt(inner, [cert], armor=False)
        armored = pysequoia.armor(binary, pysequoia.ArmorKind.Message).encode("ascii")
    except (RuntimeError, ValueError) as exc:  # pysequoia's errors for unusable keys
        raise EncryptionError(f"cannot encrypt to this OpenPGP key: {first_line(exc)}") from None
    boundary = f"=_postbud_pgp_{secrets.token_hex(12)}"
    head = outer_headers(inner, subject=subject) + [
        (f'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; '
         f'boundary="{boundary}"'),
        "",
        "This is an OpenPGP/MIME encrypted message (RFC 3156).",
        f"--{boundary}",
        "Content-Type: application/pgp-encrypted",
        "Content-Description: PGP/MIME version identification",
        "",
        "Version: 1",
        "",
        f"--{boundary}",
        'Content-Type: application/octet-stream; name="encrypted.asc"',
        "Content-Description: OpenPGP encrypted message",
        'Content-Disposition: inline; filename="encrypted.asc"',
        "",
        "",
    ]
    body = armored.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return WireMessage("\r\n".join(head).encode("ascii") + body
                       + f"--{boundary}--\r\n".encode("ascii"))
