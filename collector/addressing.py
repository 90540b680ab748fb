"""Whose mail is it: a collected message addressed to a CVR that is not its mailbox's organisation.

A provider account may receive mail for several companies (an NgDP recipient system serves every
CVR it is registered for). Such a message is never delivered under the collecting organisation: it is
held for the organisation that owns the CVR when that one is configured, else quarantined with the
reason and left at the provider for whoever owns it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from core.config import Config
from core.domain import NormalizedMessage

FOREIGN = "addressed to CVR"  # the start of a quarantine reason for another company's mail


@dataclass(frozen=True)
class Addressing:
    """Where a fetched message belongs: `organisation` to file it under, `held`/`quarantined` reasons."""

    organisation: str
    held: str | None = None
    quarantined: str | None = None


def addressed_cvr(message: NormalizedMessage) -> str | None:
    """The recipient's CVR when the message names one (MeMo, mit.dk, e-Boks do; e-mail does not)."""
    recipient = message.recipient
    if recipient is None or (recipient.id_type or "").upper() != "CVR":
        return None
    cvr = (recipient.id or "").strip()
    return cvr if len(cvr) == 8 and cvr.isdigit() else None


def place(message: NormalizedMessage, collecting: str, organisations: Collection[str]) -> Addressing:
    """Which organisation a message collected by `collecting`'s mailbox belongs to."""
    cvr = addressed_cvr(message)
    if cvr is None or cvr == collecting:
        return Addressing(collecting)
    if cvr in organisations:
        return Addressing(cvr, held=f"addressed to CVR {cvr}, collected through a mailbox of {collecting}: "
                                    f"held for {cvr} to place")
    return Addressing(collecting, quarantined=f"{FOREIGN} {cvr}, which is not {collecting}'s and not a configured "
                                              "organisation; left at the provider, never delivered")


def foreign_cvr_warnings(config: Config) -> list[str]:
    """`config check` warnings: NgDP mailboxes that would collect mail for CVRs not their organisation's."""
    warnings = []
    for org in config.organisations:
        for mb in org.mailboxes:
            if mb.type != "ngdp":
                continue
            cvrs = mb.connector_settings.get("cvrs", "all")
            if cvrs == "all":
                warnings.append(
                    f'{org.cvr}/{mb.name}.cvrs: "all" collects mail for every CVR the NgDP system serves; '
                    f'give cvrs = ["{org.cvr}"] (mail for other CVRs is held or quarantined, never delivered here)')
            elif isinstance(cvrs, (list, tuple)) and (others := sorted(str(c) for c in cvrs if str(c) != org.cvr)):
                warnings.append(
                    f"{org.cvr}/{mb.name}.cvrs: {', '.join(others)} not this organisation's CVR; that mail is held "
                    "for its own organisation if configured, else quarantined")
    return warnings
