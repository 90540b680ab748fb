"""`evaluate()` and `postbud model evaluate` on small corpora (and, slowly, on the shared one)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from router.suggester import evaluate
from postbud.cli.model import app
from router.suggester.dataset import read_records, split_records
from router.suggester.errors import DatasetError
from tests.router.test_suggester_fixtures import make_examples

KEYS = {
    "accuracy",
    "macro_f1",
    "coverage_at_99",
    "coverage_at_95",
    "precision_at_99",
    "precision_at_95",
    "train_seconds",
    "predict_ms",
    "n_train",
    "n_test",
}


def _write_corpus(path: Path, *, with_test: bool, per_class: int = 40) -> Path:
    lines = []
    for n, example in enumerate(make_examples(per_class)):
        lines.append(
            json.dumps(
                {
                    "id": f"m{n}",
                    "label": example.label,
                    "split": "test" if with_test and n % 5 == 0 else "train",
                    "title": example.title,
                    "sender": f"{example.sender_name} <{example.sender_id}>",
                    "body": example.body,
                }
            )
        )
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["corpus.jsonl", "corpus.jsonl.gz"])
def test_evaluate_reports_exactly_the_documented_keys(tmp_path: Path, name: str) -> None:
    report = evaluate(_write_corpus(tmp_path / name, with_test=True))
    assert set(report) == KEYS
    assert report["n_train"] == 96 and report["n_test"] == 24
    assert report["accuracy"] == 1.0 and report["macro_f1"] == 1.0
    for key in ("coverage_at_99", "coverage_at_95"):
        assert 0.0 <= float(report[key] or 0) <= 1.0


def test_without_a_test_split_a_stratified_fifth_is_held_out(tmp_path: Path) -> None:
    path = _write_corpus(tmp_path / "c.jsonl", with_test=False, per_class=40)
    split = split_records(read_records(path))
    assert split.held_out and len(split.test) == 24 and len(split.train) == 96
    assert sorted(str(e.label) for e in split.test) == sorted(
        ["bogholderi@firma.dk", "hr@firma.dk", "jura@firma.dk"] * 8
    )
    # Deterministic: the same file always yields the same hold-out.
    assert split_records(read_records(path)).test == split.test
    assert evaluate(path)["n_test"] == 24


def test_senders_are_split_into_name_and_address(tmp_path: Path) -> None:
    record = read_records(_write_corpus(tmp_path / "c.jsonl", with_test=True, per_class=1))[0]
    assert record.example.sender_name == "Skattestyrelsen"
    assert record.example.sender_id == "post@skat.dk"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json\n", "not JSON"),
        ('{"title": "x"}\n', "label"),
        ('{"label": "a", "split": "dev"}\n', "split"),
    ],
)
def test_bad_lines_name_the_line_and_the_fix(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message) as caught:
        evaluate(path)
    assert "bad.jsonl:1" in str(caught.value)


def test_cli_json_prints_one_object(tmp_path: Path) -> None:
    path = _write_corpus(tmp_path / "c.jsonl", with_test=True)
    result = CliRunner().invoke(app, ["evaluate", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip())
    assert set(report) == KEYS


def test_cli_table_and_error_exit(tmp_path: Path) -> None:
    path = _write_corpus(tmp_path / "c.jsonl", with_test=True)
    result = CliRunner().invoke(app, ["evaluate", str(path)])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stdout and "99 % precision" in result.stdout
    missing = CliRunner().invoke(app, ["evaluate", str(tmp_path / "absent.jsonl")])
    assert missing.exit_code == 2


@pytest.fixture
def corpus(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "20news-bydate-train.jsonl.gz"
    if not path.is_file():
        pytest.skip("the shared 20 Newsgroups corpus is absent")
    return path


@pytest.mark.slow
def test_sane_accuracy_on_a_slice_of_the_shared_corpus(corpus: Path, tmp_path: Path) -> None:
    # The file is sorted by newsgroup: evenly spaced lines cover all 20 groups.
    with gzip.open(corpus, "rt", encoding="utf-8") as stream:
        everything = stream.readlines()
    lines = [everything[i * len(everything) // 2000] for i in range(2000)]
    path = tmp_path / "slice.jsonl"
    path.write_text("".join(lines))
    report = evaluate(path)
    assert int(report["n_train"] or 0) + int(report["n_test"] or 0) == 2000
    assert float(report["accuracy"] or 0) > 0.6
    assert float(report["predict_ms"] or 0) < 20


def test_the_hold_out_keeps_file_order_for_training(tmp_path: Path) -> None:
    path = _write_corpus(tmp_path / "c.jsonl", with_test=False, per_class=20)
    records = read_records(path)
    split = split_records(records)
    in_file = [r.example for r in records]
    assert list(split.train) == [e for e in in_file if e in set(split.train)]


def test_without_a_test_split_each_labels_most_recent_fifth_is_held_out(tmp_path: Path) -> None:
    # File order is time order (oldest first): the model is judged on later mail, as in production.
    path = _write_corpus(tmp_path / "c.jsonl", with_test=False, per_class=40)
    records = read_records(path)
    split = split_records(records)
    by_label: dict[str, list[object]] = {}
    for record in records:
        by_label.setdefault(str(record.example.label), []).append(record.example)
    assert set(split.test) == {e for examples in by_label.values() for e in examples[-8:]}
    mixed = split_records(records, by="random")
    assert set(mixed.test) != set(split.test) and len(mixed.test) == len(split.test)


def test_dated_lines_are_split_by_their_date(tmp_path: Path) -> None:
    lines = [json.dumps({"id": f"m{n}", "label": "a" if n % 2 else "b", "title": f"t{n}", "body": "x",
                         "date": f"2024-01-{30 - n:02d}"}) for n in range(20)]
    path = tmp_path / "dated.jsonl"
    path.write_text("\n".join(lines) + "\n")
    split = split_records(read_records(path))
    # the newest lines are the first ones in this file
    assert {e.title for e in split.test} == {"t0", "t1", "t2", "t3"}
    assert [e.title for e in split.train][:2] == ["t19", "t18"]  # oldest first for training


def test_cli_split_option(tmp_path: Path) -> None:
    path = _write_corpus(tmp_path / "c.jsonl", with_test=False)
    for split in ("time", "random"):
        result = CliRunner().invoke(app, ["evaluate", str(path), "--json", "--split", split])
        assert result.exit_code == 0, result.output
        assert set(json.loads(result.stdout.strip())) == KEYS
    assert CliRunner().invoke(app, ["evaluate", str(path), "--split", "shuffled"]).exit_code == 2


def test_the_benchmark_splits_by_time_by_default() -> None:
    from bench.ml_bench import parse_args

    assert parse_args([]).split == "time"
