"""Which recipients the model may name: listed and approved ones only, and which it may not route to alone."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlmodel import select

from core.storage.db import Store
from core.storage.models import ApprovalStatus, RecipientApproval

# Approvals change rarely and are re-checked by delivery before every send; a short cache keeps the
# decision path off the database for most letters.
CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class Eligibility:
    """`allowed`: ids the model may suggest (None: no recipients file, anything goes);
    `never_alone`: ids an administrator keeps for a person (suggested, never routed to alone)."""

    allowed: frozenset[str] | None = None
    never_alone: frozenset[str] = frozenset()


class RecipientEligibility:
    """Reads the recipients file (duck-typed: the router imports nothing of delivery) and approvals."""

    def __init__(self, store: Store, directory: Any, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._directory = directory
        self._clock = clock
        self._cache: dict[str, tuple[float, Eligibility]] = {}

    def __call__(self, organisation: str) -> Eligibility:
        now = self._clock()
        cached = self._cache.get(organisation)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        answer = self._read(organisation)
        self._cache[organisation] = (now, answer)
        return answer

    def forget(self) -> None:
        """Drop cached answers (after an approval or revocation made in this process)."""
        self._cache.clear()

    def _read(self, organisation: str) -> Eligibility:
        directory = self._directory
        if directory is None:
            return Eligibility()
        groups = set(directory.groups(organisation))
        individuals = set(directory.ids(organisation)) - groups
        with self._store.read() as session:
            approved = set(session.exec(
                select(RecipientApproval.recipient).where(
                    RecipientApproval.organisation_cvr == organisation,
                    RecipientApproval.status == ApprovalStatus.APPROVED,
                )
            ))
        allowed = (individuals & approved) | {
            g for g, members in directory.groups(organisation).items() if set(members) <= approved
        }
        never_alone = {rid for rid in individuals if not _routes_alone(directory, organisation, rid)}
        return Eligibility(frozenset(allowed), frozenset(never_alone))


def _routes_alone(directory: Any, organisation: str, rid: str) -> bool:
    try:
        return bool(getattr(directory.get(organisation, rid), "route_alone", True))
    except KeyError:
        return True
