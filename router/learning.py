"""The learning loop: training examples from confirmed placements, one signed model per organisation,
and the model's step in the decision chain (after the rules, before the organisation's fallback).

A placement is confirmed when a person made it (`hand`) or a rule made it and nobody corrected it
(the message's latest decision is still the rule's). The model's own guesses and default routes
never become training data.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select as select_columns  # sqlmodel's select takes at most four
from sqlmodel import col, select

from core import codec
from core.storage.db import Store
from core.storage.models import Mailbox, Message, MessageStatus, RoutingDecision
from core.storage.vault import private_dir
from router.decision import Action, Decider, Decision, Facts
from router.eligibility import Eligibility
from router.realised import AutomationState, automation_state
from router.suggester.errors import ModelRejected
from router.suggester.examples import Example, fingerprint
from router.suggester.settings import SuggesterSettings

if TYPE_CHECKING:
    from router.suggester.model import TrainedModel

log = logging.getLogger(__name__)

CONFIRMED_BY = ("hand", "rule")
STATE_SECONDS = 30.0
PLACED = (MessageStatus.ROUTED, MessageStatus.DELIVERING, MessageStatus.DELIVERED)


def confirmed_examples(store: Store, organisation: str) -> list[Example]:
    """Every confirmed placement of the organisation, oldest first, labelled with its first recipient."""
    latest = (
        select(RoutingDecision.message_id, func.max(RoutingDecision.id).label("last"))
        .group_by(RoutingDecision.message_id)
        .subquery()
    )
    examples = []
    with store.read() as session:
        # Columns, not ORM objects: the decision's explanation and the message's other columns are
        # neither decoded nor kept (this reads every placement the organisation ever confirmed).
        rows = session.execute(
            select_columns(col(Message.id), col(Message.content), col(Message.provider),
                           col(RoutingDecision.recipients), col(Mailbox.name))
            .join(latest, col(latest.c.message_id) == col(Message.id))
            .join(RoutingDecision, col(RoutingDecision.id) == latest.c.last)
            .join(Mailbox, col(Mailbox.id) == col(Message.mailbox_id))
            .where(
                col(Message.organisation_cvr) == organisation,
                col(Message.status).in_(PLACED),
                col(Message.content).is_not(None),
                col(RoutingDecision.decided_by).in_(CONFIRMED_BY),
                col(RoutingDecision.action) == Action.ROUTE.value,
            )
            .order_by(col(Message.received_at), col(Message.id))
        ).all()
    vault = store.vault
    for message_id, content, provider, recipients, mailbox in rows:
        if not recipients or content is None:
            continue
        # The sealed content only (text, file names): the model never reads a file's bytes, so they
        # are neither read nor decrypted (as in routing).
        normalized = codec.message_from_json(json.loads(vault.decrypt(content, codec.content_aad(message_id))), {})
        examples.append(Example.from_message(normalized, provider=provider, mailbox=mailbox, label=recipients[0]))
    return examples


@dataclass(frozen=True)
class TrainingOutcome:
    organisation: str
    trained: bool
    examples: int
    reason: str | None
    threshold: float | None


@contextmanager
def training_turn(path: Path, *, wait: bool = False) -> Iterator[bool]:
    """Whether this process may train the model at `path` now. Instances that share the models folder
    (a PostgreSQL installation's instances on one host, or on a shared volume) would otherwise all
    train the same model from the same letters at the same time - each `run --once` does at its end -
    and each such training costs seconds of CPU the others need. The one that finds the turn taken
    leaves it to the other and picks up its model at its next training (`wait`: waits for its turn).
    An exclusive lock on a file beside the model: it goes with its process, however that ends."""
    private_dir(path.parent)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)  # releases the lock


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_mtime_ns, info.st_size


class Models:
    """The organisations' current models: loaded from signed files, retrained when the data changed."""

    def __init__(self, store: Store, folder: Path, key: bytes, settings: SuggesterSettings) -> None:
        self.store = store
        self.folder = folder
        self.key = key
        self.settings = settings
        self._models: dict[str, TrainedModel] = {}
        self._lock = threading.Lock()  # one training at a time; decisions read the dict meanwhile
        self._states: dict[str, tuple[float, AutomationState]] = {}
        self._stamps: dict[str, tuple[int, int] | None] = {}  # the file each model in memory was read from

    def path(self, organisation: str) -> Path:
        return self.folder / f"{organisation}.model"

    def get(self, organisation: str) -> TrainedModel | None:
        model = self._models.get(organisation)
        if model is None and self.path(organisation).exists():
            from router.suggester.store import load_model

            stamp = _stamp(self.path(organisation))
            try:
                model = load_model(self.path(organisation), self.key, organisation=organisation)
            except ModelRejected as exc:
                log.warning("model for %s refused (%s); it is retrained at the next training", organisation, exc)
                return None
            self._models[organisation] = model
            self._stamps[organisation] = stamp
        return model

    def state(self, organisation: str, *, fresh: bool = False) -> AutomationState:
        """Whether the organisation's current model is paused (re-read from the trace every 30 s)."""
        model = self.get(organisation)
        cached = self._states.get(organisation)
        if not fresh and cached is not None and time.monotonic() - cached[0] < STATE_SECONDS:
            return cached[1]
        state = automation_state(self.store, organisation, model.fingerprint[:12] if model else None)
        self._states[organisation] = (time.monotonic(), state)
        return state

    def train(self, organisation: str, *, force: bool = False) -> TrainingOutcome:
        """Blocking and CPU-bound: call it from a worker thread, never on the event loop. Skipped while
        another instance trains the same model (training_turn); `force` waits for it, then trains."""
        with self._lock, training_turn(self.path(organisation), wait=force) as turn:
            if not turn:
                log.info("model for %s: another instance is training it", organisation)
                return TrainingOutcome(organisation, False, 0, "another instance is training it", None)
            if organisation in self._models and _stamp(self.path(organisation)) != self._stamps.get(organisation):
                self._models.pop(organisation)  # another instance trained it since: its model, read below
                self._states.pop(organisation, None)
            examples = confirmed_examples(self.store, organisation)
            current = self.get(organisation)
            if not force and current is not None and current.fingerprint == fingerprint(examples):
                return TrainingOutcome(organisation, False, len(examples), "labelled data unchanged",
                                       current.threshold)
            from router.suggester.model import Suggester
            from router.suggester.store import save_model

            model = Suggester(self.settings).train(examples)
            private_dir(self.folder)
            save_model(model, self.path(organisation), self.key, organisation=organisation)
            self._models[organisation] = model
            self._stamps[organisation] = _stamp(self.path(organisation))
            self._states.pop(organisation, None)
        log.info("model for %s trained on %d examples in %.1fs", organisation, len(examples), model.train_seconds)
        return TrainingOutcome(organisation, True, len(examples), model.reason, model.threshold)


class ModelDecider:
    """The model when it is sure, else the organisation's fallback (the rules run before this).

    The fallback's decision carries the model's top suggestions (and why it did not route alone),
    for the manual queue.
    """

    def __init__(self, models: Models, fallback: Decider,
                 eligibility: Callable[[str], Eligibility] | None = None) -> None:
        self._models = models
        self._fallback = fallback
        self._eligibility = eligibility or (lambda _org: Eligibility())

    def decide(self, facts: Facts) -> Decision:
        model = self._models.get(facts.organisation)
        fallback = self._fallback.decide(facts)
        if model is None:
            return _with(fallback, {"model": None, "model_reason": "no model trained yet"})
        example = Example.from_message(facts.message, provider=facts.provider, mailbox=facts.mailbox)
        eligible = self._eligibility(facts.organisation)
        state = self._models.state(facts.organisation)
        target = model.settings.target_precision
        judgement = model.judge(example, allowed=eligible.allowed, never_alone=eligible.never_alone,
                                stricter=1.0 - (1.0 - target) / 2 if state.raised else None)
        shown = [{"label": s.label, "probability": round(s.probability, 4)} for s in judgement.suggestions]
        threshold = model.effective_threshold
        model_info: dict[str, Any] = {
            "model": model.fingerprint[:12],
            "threshold": None if threshold == float("inf") else round(threshold, 4),
            "suggestions": shown,
        }
        chosen = judgement.chosen
        if state.paused:
            model_info["model_reason"] = state.paused
            return _with(fallback, model_info)
        if chosen is not None:
            return Decision(Action.ROUTE, decided_by="model", recipients=(chosen.label,),
                            reason=f"model: {chosen.probability:.1%} ≥ threshold {threshold:.1%}",
                            explanation=model_info)
        model_info["model_reason"] = judgement.why_not
        return _with(fallback, model_info)


def _with(decision: Decision, extra: dict[str, Any]) -> Decision:
    return Decision(decision.action, decision.decided_by, decision.recipients, decision.rule,
                    decision.reason, {**decision.explanation, **extra})
