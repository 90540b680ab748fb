"""A person's correction of a wrong placement, then the review of the model it may pause: the one path
that `postbud queue correct` and the console's correction page share."""

from __future__ import annotations

from core.config import Config
from core.notify import TraceNotifier
from core.storage.db import Store
from postbud.runtime import open_models
from router.correction import Correction, correct
from router.realised import review


def correct_and_review(store: Store, config: Config, message_id: str, recipients: list[str], *, actor: str,
                       directory: object) -> tuple[Correction, str | None]:
    """Re-route `message_id` to `recipients` (approved ones: the caller checked) and, when the model had
    placed it, pause the model at once if its corrections now show it below target. Returns the
    correction and the pause's reason (None when it did not pause).

    Raises router.correction.NotCorrectable for a letter that cannot be re-routed.
    """
    done = correct(store, message_id, recipients, actor=actor, directory=directory,
                   channels=config.delivery.channels)
    if done.overruled != "model" or not config.model.enabled:
        return done, None
    # Pausing at once: the daemon's hourly review would let a broken promise route meanwhile.
    model = open_models(config, store).get(done.organisation)
    notifier = TraceNotifier(store, {o.cvr: o.administrators for o in config.organisations})
    paused = review(store, notifier, done.organisation, model.fingerprint[:12] if model else None,
                    config.model.target_precision)
    return done, paused
