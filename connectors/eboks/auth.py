"""The e-Boks XML API handshake: logon challenges, per-request responses and the X-EBOKS-AUTHENTICATE header.

PROTOCOLS.md §1.3: the logon challenge is a double SHA-256 (activation-code mode) or an RSA PKCS#1 v1.5
signature (MitID-registered device); every later request carries the latest nonce and a `response`
whose real check is unknown, so the computation is selectable (`ResponseStyle`).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from xml.sax.saxutils import quoteattr

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

HEADER = "X-EBOKS-AUTHENTICATE"
_FIELD = re.compile(r'(\w+)="([^"]*)"')


class AuthMode(StrEnum):
    ACTIVATION = "activation"
    RSA = "rsa"


class ResponseStyle(StrEnum):
    """How the per-request `response` is computed; real clients disagree (PROTOCOLS.md §1.3)."""

    HA_EBOKS = "ha-eboks"
    POSTBOKS = "postboks"
    CONSTANT = "constant"


@dataclass(frozen=True)
class Credentials:
    """A delegate's credentials: the person (CPR) through whom the company's shares are reached."""

    mode: AuthMode
    cpr: str
    password: str
    device_id: str
    activation_code: str | None = None
    private_key_pem: str | None = None
    rsa_hash: str = "sha256"

    def __repr__(self) -> str:  # secrets and the CPR never reach a log line
        return f"Credentials(mode={self.mode.value}, device_id={self.device_id})"


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=8)
def _load_key(pem: str) -> rsa.RSAPrivateKey:
    # The device key is the operator's own, from their configuration: the consistency check that guards
    # against crafted keys from elsewhere costs 31 ms (2048 bits) to 190 ms (4096) of every start.
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None, unsafe_skip_rsa_key_validation=True)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the e-Boks device key must be an RSA private key")
    return key


def _sign(creds: Credentials, text: str) -> str:
    if creds.private_key_pem is None:
        raise ValueError("RSA mode needs a private key")
    algorithm: hashes.HashAlgorithm = hashes.SHA1() if creds.rsa_hash == "sha1" else hashes.SHA256()
    signature = _load_key(creds.private_key_pem).sign(text.encode("utf-8"), padding.PKCS1v15(), algorithm)
    return base64.b64encode(signature).decode("ascii")


def stamp(now: datetime | None = None) -> str:
    """The `datetime` value of the logon header: UTC as `YYYY-MM-DD HH:MM:SSZ` (Net-Eboks, ha-eboks)."""
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def logon_challenge(creds: Credentials, when: str) -> str:
    """The `challenge` for `PUT session`, over the exact `when` string sent in the header."""
    if creds.mode is AuthMode.ACTIVATION:
        if creds.activation_code is None:
            raise ValueError("activation-code mode needs an activation code")
        inner = _sha256_hex(
            f"{creds.activation_code}:{creds.device_id}:P:{creds.cpr}:DK:{creds.password}:{when}"
        )
        return _sha256_hex(inner)
    return _sign(creds, f"EBOKS:{creds.device_id}:P:{creds.cpr}:DK:{creds.password}:{when}")


def request_response(creds: Credentials, style: ResponseStyle, nonce: str, session_id: str) -> str:
    """The `response` field of a request inside a session."""
    if style is ResponseStyle.CONSTANT:
        return "0" * 64
    if creds.mode is AuthMode.RSA and style is ResponseStyle.HA_EBOKS:
        return _sign(creds, f"{creds.device_id}:{nonce}")
    code = creds.activation_code or ""
    if style is ResponseStyle.POSTBOKS:
        return _sha256_hex(_sha256_hex(f"{code}:{creds.device_id}:{nonce}:{session_id}"))
    return _sha256_hex(f"{code}:{creds.device_id}:{nonce}")


def format_header(fields: dict[str, str], *, prefix: str = "") -> str:
    """`prefix key="value",key="value"` as the API writes it."""
    body = ",".join(f'{key}="{value}"' for key, value in fields.items())
    return f"{prefix} {body}" if prefix else body


def parse_header(value: str | None) -> dict[str, str]:
    """The quoted key/value pairs of an X-EBOKS-AUTHENTICATE header (empty when absent)."""
    return dict(_FIELD.findall(value or ""))


def logon_body(creds: Credentials) -> bytes:
    """The `Logon` XML document; attribute values are escaped because passwords may hold any character."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<Logon xmlns="urn:eboks:mobile:1.0.0">'
        '<App version="1.0.0" os="postbud" osVersion="1" Device="postbud"/>'
        f'<User identity={quoteattr(creds.cpr)} identityType="P" nationality="DK" '
        f"pincode={quoteattr(creds.password)}/>"
        "</Logon>"
    ).encode("utf-8")
