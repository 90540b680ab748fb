"""Reads a labelled evaluation corpus (JSONL, plain or gzip) and splits it into train and test."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import IO, Any

from router.suggester.errors import DatasetError
from router.suggester.examples import Example

_GZIP_MAGIC = b"\x1f\x8b"
HOLDOUT_SHARE = 0.2


@dataclass(frozen=True)
class Record:
    key: str
    split: str
    example: Example


@dataclass(frozen=True)
class Split:
    train: tuple[Example, ...]
    test: tuple[Example, ...]
    held_out: bool  # True when the test part was carved out of train here


def _open(path: Path) -> IO[str]:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def _example(obj: dict[str, Any]) -> Example:
    sender = str(obj.get("sender") or "")
    name, address = parseaddr(sender)
    return Example(
        title=str(obj.get("title") or ""),
        sender_name=name if address else sender,
        sender_id=address,
        body=str(obj.get("body") or ""),
        provider=str(obj.get("provider") or ""),
        mailbox=str(obj.get("mailbox") or ""),
        cvr=str(obj.get("cvr") or ""),
        attachment_names=tuple(str(a) for a in obj.get("attachments") or ()),
        label=str(obj["label"]),
    )


def read_records(path: Path, *, limit: int | None = None) -> list[Record]:
    """Every labelled line of the file (at most `limit`), in file order."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    records: list[Record] = []
    try:
        with _open(path) as stream:
            for number, line in enumerate(stream, start=1):
                if limit is not None and len(records) >= limit:
                    break
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}:{number}: not JSON ({exc.msg})") from exc
                if not isinstance(obj, dict) or not obj.get("label"):
                    raise DatasetError(f"{path}:{number}: each line needs an object with a 'label'")
                split = str(obj.get("split") or "train").lower()
                if split not in ("train", "test"):
                    raise DatasetError(
                        f"{path}:{number}: split must be 'train' or 'test', got {split!r}"
                    )
                key = str(obj.get("id") or hashlib.sha256(line.encode("utf-8")).hexdigest())
                records.append(Record(key=key, split=split, example=_example(obj)))
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable ({exc})") from exc
    return records


def split_records(records: list[Record]) -> Split:
    """The file's own split, or — without test lines — a deterministic stratified 20 % hold-out."""
    train = [r for r in records if r.split == "train"]
    test = [r for r in records if r.split == "test"]
    if test:
        return Split(
            tuple(r.example for r in train), tuple(r.example for r in test), held_out=False
        )
    by_label: dict[str, list[int]] = defaultdict(list)
    for position, record in enumerate(train):
        by_label[str(record.example.label)].append(position)
    held: set[int] = set()
    for label in sorted(by_label):
        # Choosing by a hash of the id makes the hold-out independent of file order and of any RNG.
        members = sorted(by_label[label], key=lambda i: _digest(train[i].key))
        held.update(members[: round(len(members) * HOLDOUT_SHARE)])
    # Both parts keep file order: training treats it as chronological.
    return Split(
        tuple(r.example for i, r in enumerate(train) if i not in held),
        tuple(r.example for i, r in enumerate(train) if i in held),
        held_out=True,
    )


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
