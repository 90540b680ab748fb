"""Turns examples into one sparse TF-IDF matrix: word n-grams, character n-grams, metadata tokens."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parseaddr

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from router.suggester.examples import Example
from router.suggester.settings import SuggesterSettings

_WORD = re.compile(r"\w+", re.UNICODE)
# CPR numbers (DDMMYY-XXXX, with or without the dash) must not end up in a model's vocabulary. The
# look-behind (no digit before) comes after the first character so that the search skips ahead to
# the next 0-3 instead of trying the pattern at every position (4x faster, same matches).
_CPR = re.compile(r"[0-3](?<!\d[0-3])\d[01]\d\d\d-?\d{4}(?!\d)")
# Below this many examples document-frequency pruning would empty the vocabulary of small orgs.
_PRUNE_FROM = 200
# Batches up to this size are vectorized by hand: sklearn's fixed per-call cost dominates them.
_BY_HAND_UP_TO = 8


def word_text(example: Example, body_chars: int) -> str:
    """Title twice (it is short and telling) plus the body, for word n-grams."""
    return _CPR.sub(" cprnr ", f"{example.title}\n{example.title}\n{example.body[:body_chars]}")


def char_text(example: Example, body_chars: int) -> str:
    """The short fields where spelling variants matter most, plus the opening of the body."""
    text = (
        f"{example.title}\n{example.sender_name}\n{example.attention}\n{example.body[:body_chars]}"
    )
    return _CPR.sub(" cprnr ", text)


def meta_tokens(example: Example) -> list[str]:
    """Exact-match tokens for who sent it, where it arrived and what is attached."""
    tokens = ["_bias"]
    # parseaddr is slow; only a full "Name <address>" form needs it.
    name, address = parseaddr(example.sender_id) if "<" in example.sender_id else ("", "")
    sender_id = _CPR.sub("cprnr", (address or example.sender_id).strip().lower())
    if sender_id:
        tokens.append(f"sid:{sender_id}")
        if "@" in sender_id:
            parts = sender_id.rsplit("@", 1)[1].split(".")
            tokens += [f"sdom:{'.'.join(parts[i:])}" for i in range(len(parts) - 1)]
    sender_name = (example.sender_name or name).lower()
    words = _WORD.findall(sender_name)
    tokens += [f"sname:{w}" for w in words]
    if words:
        tokens.append(f"sfull:{'_'.join(words)}")
    for field, value in (
        ("prov", example.provider),
        ("mbox", example.mailbox),
        ("cvr", example.cvr),
    ):
        if value:
            tokens.append(f"{field}:{value.strip().lower()}")
    for attachment in example.attachment_names:
        lowered = _CPR.sub("cprnr", attachment.lower())
        tokens += [f"att:{w}" for w in _WORD.findall(lowered.rsplit(".", 1)[0])]
        if "." in lowered:
            tokens.append(f"ext:{lowered.rsplit('.', 1)[1]}")
    tokens += [f"attn:{w}" for w in _WORD.findall(example.attention.lower())]
    return tokens


class _Block:
    """One fitted vectorizer with its input extractor and weight; can score a document by hand."""

    def __init__(
        self,
        name: str,
        vectorizer: TfidfVectorizer,
        extract: Callable[[Example], object],
        weight: float,
    ) -> None:
        self.name = name
        self.vectorizer = vectorizer
        self.extract = extract
        self.weight = weight
        self._analyze: Callable[[object], list[str]] | None = None
        self._idf: np.ndarray | None = None

    def __getstate__(self) -> dict[str, object]:
        # The analyzer closure is rebuilt after loading rather than pickled.
        return {
            "name": self.name,
            "vectorizer": self.vectorizer,
            "extract": self.extract,
            "weight": self.weight,
        }

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._analyze = None
        self._idf = None

    @property
    def size(self) -> int:
        return len(self.vectorizer.vocabulary_)

    def tokens(self, example: Example) -> list[str]:
        """The terms the vectorizer sees in one example (before the vocabulary filters them)."""
        if self._analyze is None or self._idf is None:
            self._analyze = self.vectorizer.build_analyzer()
            self._idf = np.asarray(self.vectorizer.idf_, dtype=np.float64)
        return self._analyze(self.extract(example))

    def row(self, example: Example, tokens: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(column indices, weighted values) of one example, equal to the vectorizer's own output."""
        tokens = self.tokens(example) if tokens is None else tokens
        assert self._idf is not None
        vocabulary = self.vectorizer.vocabulary_
        counts: dict[int, int] = {}
        for token in tokens:
            column = vocabulary.get(token)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        columns = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        values = (np.log(tf) + 1.0) * self._idf[columns]
        norm = float(np.sqrt(np.dot(values, values)))
        if norm > 0:
            values /= norm
        return columns, values * self.weight


@dataclass(frozen=True)
class Familiarity:
    """How much of a letter the model has seen before: its sender, and the share of its words."""

    sender_known: bool
    known_share: float  # distinct words of title and body found in the vocabulary (1.0: no words)


class FeatureSpace:
    """Fitted vectorizers; `transform` maps examples to rows of one CSR matrix (float32)."""

    def __init__(self, settings: SuggesterSettings) -> None:
        self._settings = settings
        self._blocks: list[_Block] = []

    def fit_transform(self, examples: Sequence[Example]) -> sp.csr_matrix:
        s = self._settings
        small = len(examples) < _PRUNE_FROM
        min_df, max_df = (1, 1.0) if small else (s.min_df, s.max_df)
        candidates = [
            _Block(
                "word",
                TfidfVectorizer(
                    sublinear_tf=True,
                    ngram_range=s.word_ngrams,
                    min_df=min_df,
                    max_df=max_df,
                    dtype=np.float32,
                ),
                _WordText(s.body_chars),
                1.0,
            ),
            _Block(
                "char",
                TfidfVectorizer(
                    sublinear_tf=True,
                    analyzer="char_wb",
                    ngram_range=s.char_ngrams,
                    min_df=min_df,
                    max_df=max_df,
                    dtype=np.float32,
                ),
                _CharText(s.char_body_chars),
                s.char_weight,
            ),
            _Block(
                "meta",
                TfidfVectorizer(
                    sublinear_tf=True, analyzer=meta_tokens, min_df=1, dtype=np.float32
                ),
                _identity,
                s.meta_weight,
            ),
        ]
        matrices = []
        for block in candidates:
            if block.weight <= 0:
                continue
            try:
                matrix = block.vectorizer.fit_transform([block.extract(e) for e in examples])
            except ValueError:
                # "empty vocabulary" / "no terms remain": this block carries nothing for these examples.
                continue
            self._blocks.append(block)
            matrices.append(matrix * block.weight)
        return sp.hstack(matrices, format="csr", dtype=np.float32)

    def transform(self, examples: Sequence[Example]) -> sp.csr_matrix:
        if len(examples) <= _BY_HAND_UP_TO:
            return self._transform_by_hand(examples)
        matrices = [
            b.vectorizer.transform([b.extract(e) for e in examples]) * b.weight
            for b in self._blocks
        ]
        return sp.hstack(matrices, format="csr", dtype=np.float32)

    def _transform_by_hand(self, examples: Sequence[Example]) -> sp.csr_matrix:
        """The same matrix as `transform`, built without sklearn's per-call validation (~10x faster)."""
        columns: list[np.ndarray] = []
        values: list[np.ndarray] = []
        indptr = [0]
        for example in examples:
            offset, filled = 0, indptr[-1]
            for block in self._blocks:
                block_columns, block_values = block.row(example)
                columns.append(block_columns + offset)
                values.append(block_values)
                offset += block.size
                filled += len(block_columns)
            indptr.append(filled)
        data = np.concatenate(values).astype(np.float32) if values else np.zeros(0, np.float32)
        indices = np.concatenate(columns) if columns else np.zeros(0, np.int64)
        return sp.csr_matrix(
            (data, indices, np.asarray(indptr)), shape=(len(examples), self.n_features)
        )

    def familiarity(self, example: Example) -> Familiarity:
        """Whether the sender was ever placed before and how much of the wording is known."""
        blocks = {block.name: block for block in self._blocks}
        meta = blocks.get("meta")
        sender_known = False
        if meta is not None:
            vocabulary = meta.vectorizer.vocabulary_
            who = [t for t in meta.tokens(example) if t.startswith(("sid:", "sfull:"))]
            sender_known = any(t in vocabulary for t in who)
        words = blocks.get("word")
        if words is None:
            return Familiarity(sender_known, 1.0)
        # Unigrams only: a known word in a new order is still familiar wording.
        distinct = {t for t in words.tokens(example) if " " not in t and not t.isdigit()}
        if not distinct:
            return Familiarity(sender_known, 1.0)
        known = sum(1 for t in distinct if t in words.vectorizer.vocabulary_)
        return Familiarity(sender_known, known / len(distinct))

    def terms(self) -> list[str]:
        """Every term the model keeps (for audits: this is what a model file can reveal)."""
        return [str(term) for block in self._blocks for term in block.vectorizer.vocabulary_]

    @property
    def n_features(self) -> int:
        return sum(b.size for b in self._blocks)


def _identity(example: Example) -> Example:
    return example


@dataclass(frozen=True)
class _WordText:
    body_chars: int

    def __call__(self, example: Example) -> str:
        return word_text(example, self.body_chars)


@dataclass(frozen=True)
class _CharText:
    body_chars: int

    def __call__(self, example: Example) -> str:
        return char_text(example, self.body_chars)
