"""Model files: round trip, tampering, wrong key, version mismatches, atomic replacement."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import sklearn

from router.suggester import (
    ModelRejected,
    RejectReason,
    Suggester,
    TrainedModel,
    load_model,
    save_model,
    store,
)
from tests.router.test_suggester_fixtures import ambiguous_example, clear_example, make_examples

KEY = b"k" * 32


@pytest.fixture(scope="module")
def model() -> TrainedModel:
    return Suggester().train(make_examples(30))


@pytest.fixture
def saved(model: TrainedModel, tmp_path: Path) -> Path:
    path = tmp_path / "models" / "12345678.model"
    save_model(model, path, KEY)
    return path


def test_round_trip_keeps_suggestions_and_threshold(model: TrainedModel, saved: Path) -> None:
    loaded = load_model(saved, KEY)
    assert loaded.threshold == model.threshold
    assert loaded.fingerprint == model.fingerprint
    for example in (clear_example("hr@firma.dk"), ambiguous_example()):
        assert loaded.suggest(example) == model.suggest(example)


def test_tampered_file_is_refused(saved: Path) -> None:
    blob = bytearray(saved.read_bytes())
    blob[-100] ^= 0x01
    saved.write_bytes(bytes(blob))
    with pytest.raises(ModelRejected) as caught:
        load_model(saved, KEY)
    assert caught.value.reason is RejectReason.SIGNATURE


def test_edited_header_is_refused(saved: Path) -> None:
    saved.write_bytes(saved.read_bytes().replace(b'"format": 2', b'"format": 3', 1))
    with pytest.raises(ModelRejected) as caught:
        load_model(saved, KEY)
    assert caught.value.reason is RejectReason.SIGNATURE


def test_other_key_is_refused(saved: Path) -> None:
    with pytest.raises(ModelRejected) as caught:
        load_model(saved, b"x" * 32)
    assert caught.value.reason is RejectReason.SIGNATURE


def test_forged_payload_is_never_unpickled(saved: Path, tmp_path: Path) -> None:
    # GIVEN a file whose payload would run code when unpickled, without a valid signature
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Touch(str(marker)))
    magic, header, _signature, _rest = saved.read_bytes().split(b"\n", 3)
    saved.write_bytes(b"\n".join([magic, header, b"0" * 64, payload]))
    # THEN loading refuses it before unpickling anything
    with pytest.raises(ModelRejected):
        load_model(saved, KEY)
    assert not marker.exists()


class _Touch:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (Path(self.path),))


def test_other_format_version_is_refused(
    model: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.model"
    monkeypatch.setattr(store, "FORMAT_VERSION", 0)
    save_model(model, path, KEY)
    monkeypatch.undo()
    with pytest.raises(ModelRejected) as caught:
        load_model(path, KEY)
    assert caught.value.reason is RejectReason.FORMAT_VERSION


def test_other_sklearn_version_is_refused(
    model: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.model"
    monkeypatch.setattr(sklearn, "__version__", "0.0.1")
    save_model(model, path, KEY)
    monkeypatch.undo()
    with pytest.raises(ModelRejected) as caught:
        load_model(path, KEY)
    assert caught.value.reason is RejectReason.SKLEARN_VERSION
    assert "0.0.1" in str(caught.value)


@pytest.mark.parametrize("content", [b"", b"not a model", b"POSTBUD-SUGGESTER\n{}"])
def test_garbage_is_refused_as_corrupt(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "m.model"
    path.write_bytes(content)
    with pytest.raises(ModelRejected) as caught:
        load_model(path, KEY)
    assert caught.value.reason is RejectReason.CORRUPT


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelRejected) as caught:
        load_model(tmp_path / "absent.model", KEY)
    assert caught.value.reason is RejectReason.MISSING


def test_save_replaces_atomically_and_leaves_no_temporary_files(saved: Path) -> None:
    newer = Suggester().train(make_examples(20, seed=99))
    save_model(newer, saved, KEY)
    assert load_model(saved, KEY).fingerprint == newer.fingerprint
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_short_key_is_a_programming_error(model: TrainedModel, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        save_model(model, tmp_path / "m.model", b"short")


def test_header_is_readable_without_the_key_for_diagnostics(
    model: TrainedModel, saved: Path
) -> None:
    header = store.read_header(saved)
    assert header["format"] == store.FORMAT_VERSION
    assert header["sklearn"] == sklearn.__version__
    assert header["fingerprint"] == model.fingerprint
