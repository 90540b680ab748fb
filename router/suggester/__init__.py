"""The ML suggester: learns recipients from confirmed placements and routes alone only when sure.

Public API (everything else in this package is internal):

- `Example`, `Suggestion`, `fingerprint()` — training data, answers, and a hash to skip retraining;
- `SuggesterSettings`, `Suggester.train(examples) -> TrainedModel` — pure, synchronous, CPU-bound
  (run it in a worker thread or process, never on the event loop);
- `TrainedModel.suggest(example)` (top 3), `.threshold`, `.automatic(suggestions)`, `.reason`;
- `save_model(model, path, key)` / `load_model(path, key)` — signed, versioned, atomic model files;
  `ModelRejected` tells the caller to retrain;
- `evaluate(dataset_path)` — trains and scores on a labelled JSONL corpus (`postbud model evaluate`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# scikit-learn and SciPy cost ~100 MB of memory on import: loaded on first use, so a daemon whose
# organisations have no trained model yet never pays for them.
_EXPORTS = {
    "ModelRejected": "errors", "RejectReason": "errors", "SuggesterError": "errors",
    "evaluate": "evaluation",
    "Example": "examples", "Suggestion": "examples", "fingerprint": "examples",
    "Suggester": "model", "TrainedModel": "model",
    "SuggesterSettings": "settings",
    "FORMAT_VERSION": "store", "load_model": "store", "save_model": "store",
}

if TYPE_CHECKING:
    from router.suggester.errors import ModelRejected, RejectReason, SuggesterError
    from router.suggester.evaluation import evaluate
    from router.suggester.examples import Example, Suggestion, fingerprint
    from router.suggester.model import Suggester, TrainedModel
    from router.suggester.settings import SuggesterSettings
    from router.suggester.store import FORMAT_VERSION, load_model, save_model


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'router.suggester' has no attribute {name!r}")
    return getattr(importlib.import_module(f"router.suggester.{module}"), name)


__all__ = [  # noqa: F822 (served by __getattr__)
    "FORMAT_VERSION", "Example", "ModelRejected", "RejectReason", "Suggester", "SuggesterError",
    "SuggesterSettings", "Suggestion", "TrainedModel", "evaluate", "fingerprint", "load_model", "save_model",
]
