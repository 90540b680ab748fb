"""The mit.dk token pair (the mit.dk "dpp" token and the NgDP token): refresh before expiry, rotation, persistence.

Every refresh returns new refresh tokens and, by default on the fake and probably on mit.dk, retires
the old ones (PROTOCOLS.md §4.2), so the new pair is saved through the state store before it is
used. Tokens never appear in logs, reprs or error messages.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from connectors.mitdk.errors import ShapeError

PAIR = ("dpp", "ngdp")
DEFAULT_LIFETIME = 1200.0  # mit.dk sessions last about 20 minutes (§2.1)


@dataclass(frozen=True)
class Token:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_on: float

    def to_state(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "refresh_token": self.refresh_token,
                "expires_on": self.expires_on}


Pair = dict[str, Token]


def seed_fingerprint(dpp_refresh: str, ngdp_refresh: str) -> str:
    """Identifies the configured refresh tokens, so a new onboarding replaces an old stored chain."""
    return hashlib.sha256(f"{dpp_refresh}\0{ngdp_refresh}".encode()).hexdigest()[:16]


def from_state(data: dict[str, Any]) -> Pair | None:
    stored = data.get("tokens")
    if not isinstance(stored, dict):
        return None
    try:
        return {name: Token(str(stored[name]["access_token"]), str(stored[name]["refresh_token"]),
                            float(stored[name]["expires_on"])) for name in PAIR}
    except (KeyError, TypeError, ValueError):
        return None


def to_state(pair: Pair) -> dict[str, Any]:
    return {name: pair[name].to_state() for name in PAIR}


def parse_refresh(body: Any, now: float) -> Pair:
    """`{dpp:{access_token, refresh_token, expires_on}, ngdp:{…}}` into a pair (expires_in also accepted)."""
    if not isinstance(body, dict):
        raise ShapeError("the token answer is not an object")
    pair: Pair = {}
    for name in PAIR:
        part = body.get(name)
        if not isinstance(part, dict) or not part.get("access_token") or not part.get("refresh_token"):
            raise ShapeError(f"the token answer lacks {name} tokens")
        if part.get("expires_on") is not None:
            expires = float(part["expires_on"])
        else:
            expires = now + float(part.get("expires_in", DEFAULT_LIFETIME))
        pair[name] = Token(str(part["access_token"]), str(part["refresh_token"]), expires)
    return pair


def is_refusal(body: Any) -> bool:
    """helmstedt's test: a token answer carrying `code` or `status` is a refusal (§2.1)."""
    return isinstance(body, dict) and ("code" in body or "status" in body)
