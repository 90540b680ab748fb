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

from router.suggester.errors import ModelRejected, RejectReason, SuggesterError
from router.suggester.evaluate import evaluate
from router.suggester.examples import Example, Suggestion, fingerprint
from router.suggester.model import Suggester, SuggesterSettings, TrainedModel
from router.suggester.store import FORMAT_VERSION, load_model, save_model

__all__ = [
    "FORMAT_VERSION",
    "Example",
    "ModelRejected",
    "RejectReason",
    "Suggester",
    "SuggesterError",
    "SuggesterSettings",
    "Suggestion",
    "TrainedModel",
    "evaluate",
    "fingerprint",
    "load_model",
    "save_model",
]
