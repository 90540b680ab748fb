"""Reads a labelled evaluation corpus (JSONL, plain or gzip) and splits it into train and test."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import IO, Any, Literal

from router.suggester.errors import DatasetError
from router.suggester.examples import Example

_GZIP_MAGIC = b"\x1f\x8b"
HOLDOUT_SHARE = 0.2
SplitBy = Literal["time", "random"]


@dataclass(frozen=True)
class Record:
    key: str
    split: str
    example: Example
    when: str = ""  # the line's `date` (ISO 8601), if any; else file order is time order


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
                when = str(obj.get("date") or "")
                records.append(Record(key=key, split=split, example=_example(obj), when=when))
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable ({exc})") from exc
    return records


def split_records(records: list[Record], *, by: SplitBy = "time") -> Split:
    """The file's own split, or — without test lines — 20 % of each label held out.

    `time` (default) holds out each label's most recent 20 % (by `date` when every line has one,
    else in file order, which must then be oldest first): the model is judged on later mail, as
    in production. `random` holds out a deterministic hashed 20 % instead (mixed in time).
    """
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
    if by == "time":
        dated = all(r.when for r in train)
        for members in by_label.values():
            if dated:
                members = sorted(members, key=lambda i: (train[i].when, i))
            held.update(members[len(members) - round(len(members) * HOLDOUT_SHARE) :])
        return _parts(train, held)
    for label in sorted(by_label):
        # Choosing by a hash of the id makes the hold-out independent of file order and of any RNG.
        members = sorted(by_label[label], key=lambda i: _digest(train[i].key))
        held.update(members[: round(len(members) * HOLDOUT_SHARE)])
    return _parts(train, held)


def _parts(train: list[Record], held: set[int]) -> Split:
    # Both parts keep file order (or date order when dated): training treats it as chronological.
    if train and all(r.when for r in train):
        order = sorted(range(len(train)), key=lambda i: (train[i].when, i))
    else:
        order = list(range(len(train)))
    return Split(
        tuple(train[i].example for i in order if i not in held),
        tuple(train[i].example for i in order if i in held),
        held_out=True,
    )


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
