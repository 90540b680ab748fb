"""When `run --once` retrains the models: hourly as the daemon does, or at once when a person's new
placements may route letters that wait for one.

Training reads and decrypts every confirmed placement and fits the model again (on 2,015 letters
about 2.5 s of CPU with the library's import): at the end of every cron run that grew with the
history and helped that run only through the held letters a new model re-offers. So a run trains
when the last training (by the daemon or a run, remembered in `<model folder>/last-training.json`)
is older than `[model] train_interval_seconds`, or when letters are held and a person placed a
letter by hand since (what teaches the model what the rules do not know). The first run of an
installation starts the clock without training unless that second reason holds.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import col, select

from core.config import Config
from core.storage.db import Store
from core.storage.models import Message, MessageStatus, RoutingDecision
from core.storage.vault import private_dir

log = logging.getLogger(__name__)

STAMP = "last-training.json"
BY_HAND = "hand"


@dataclass(frozen=True)
class LastTraining:
    at: float  # epoch seconds
    hand_placement: int  # the newest placement by hand (its routing decision's id) then; 0: none


def last_training(folder: Path) -> LastTraining | None:
    """What the stamp says; None when there is none (or it cannot be read: treated as none)."""
    try:
        data = json.loads((folder / STAMP).read_text(encoding="utf-8"))
        return LastTraining(at=float(data["at"]), hand_placement=int(data["hand_placement"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remember_training(folder: Path, last: LastTraining) -> None:
    """Write the stamp atomically (a crash leaves the old one or the new)."""
    private_dir(folder)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{STAMP}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"at": last.at, "hand_placement": last.hand_placement}, handle)
    os.replace(tmp, folder / STAMP)


def newest_hand_placement(store: Store) -> int:
    with store.read() as session:
        found = session.exec(select(RoutingDecision.id).where(RoutingDecision.decided_by == BY_HAND)
                             .order_by(col(RoutingDecision.id).desc()).limit(1)).first()
    return int(found or 0)


def letters_held(store: Store, organisations: list[str]) -> bool:
    with store.read() as session:
        return session.exec(select(Message.id).where(Message.status == MessageStatus.HELD,
                                                     col(Message.organisation_cvr).in_(organisations))
                            .limit(1)).first() is not None


def why_train(store: Store, config: Config, now: float) -> str | None:
    """Why this run trains; None when it does not. The first call of an installation (no stamp)
    starts the clock: it writes the stamp unless it trains."""
    last = last_training(config.model.folder)
    if last is not None and now - last.at >= config.model.train_interval_seconds:
        return "the last training is older than [model] train_interval_seconds"
    hand = newest_hand_placement(store)
    if hand > (last.hand_placement if last else 0) and letters_held(store, [o.cvr for o in config.organisations]):
        return "letters are held and a person placed letters since the last training"
    if last is None:
        remember_training(config.model.folder, LastTraining(at=now, hand_placement=hand))
    return None
