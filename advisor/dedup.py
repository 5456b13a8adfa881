"""Exact and near-duplicate detection for training examples, in pure Python.

Exact duplicates: identical after normalisation (Unicode NFKC, case-folded, runs of
whitespace collapsed).

Near duplicates: Jaccard similarity of word 3-gram shingle sets >= NEAR_JACCARD.
Candidates come from MinHash-style locality-sensitive hashing, then every candidate pair
is verified with the exact Jaccard, so the LSH can only miss pairs, never invent them.

    signature: one-permutation hashing (Li, Owen & Zhang, NIPS 2012): each shingle is
               hashed once (crc32); bin = h mod K, and the bin keeps the minimum h // K.
               For two sets, P[bin values equal] ~= Jaccard(A, B).
    banding:   K = BANDS * ROWS; a pair is a candidate if any band of ROWS bins matches,
               P[candidate] = 1 - (1 - J**ROWS)**BANDS  (Leskovec, Rajaraman & Ullman,
               Mining of Massive Datasets, ch. 3.4): 0.985 at J=0.8, 0.40 at J=0.5.

Cost is one crc32 per shingle, so near-duplicate search covers at most MAX_NEAR_ROWS rows
(the first ones); the profile says so when it stops early.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from array import array
from collections import defaultdict
from collections.abc import Iterable, Sequence

NEAR_JACCARD = 0.8
SHINGLE_WORDS = 3
BANDS, ROWS = 8, 4
K = BANDS * ROWS
MAX_NEAR_ROWS = 10_000
_WORD = re.compile(r"\w+", re.UNICODE)
_SPACE = re.compile(r"\s+")
_EMPTY_BIN = 1 << 40  # larger than any crc32 // K, so an empty bin never matches a real one


def normalise(text: str) -> str:
    """The form two texts must share to count as exact duplicates."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def shingles(text: str) -> set[int]:
    """crc32 of each word 3-gram of the normalised text (all words if fewer than 3)."""
    words = _WORD.findall(normalise(text))
    if len(words) < SHINGLE_WORDS:
        return {zlib.crc32(" ".join(words).encode())} if words else set()
    return {
        zlib.crc32(" ".join(words[i : i + SHINGLE_WORDS]).encode())
        for i in range(len(words) - SHINGLE_WORDS + 1)
    }


def signature(hashes: Iterable[int]) -> tuple[int, ...]:
    """One-permutation MinHash signature with K bins (see module docstring)."""
    bins = [_EMPTY_BIN] * K
    for h in hashes:
        b, v = h % K, h // K
        if v < bins[b]:
            bins[b] = v
    return tuple(bins)


def jaccard(a: set[int], b: set[int]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def exact_groups(keys: Sequence[str]) -> list[list[int]]:
    """Indices grouped by identical key, only groups with more than one member, in order."""
    seen: dict[str, list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        seen[key].append(index)
    return [group for group in seen.values() if len(group) > 1]


class LshIndex:
    """Band buckets of signatures; `query` returns verified near-duplicates."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[int, tuple[int, ...]], list[int]] = defaultdict(list)
        # Compact unsigned 32-bit arrays: a set of Python ints costs ~15x more memory.
        self._shingles: dict[int, array] = {}

    def add(self, index: int, items: set[int]) -> None:
        self._shingles[index] = array("I", items)
        for band in _bands(signature(items)):
            self._buckets[band].append(index)

    def query(self, items: set[int]) -> list[tuple[int, float]]:
        """(index, jaccard) of indexed sets with Jaccard >= NEAR_JACCARD, best first."""
        candidates: set[int] = set()
        for band in _bands(signature(items)):
            candidates.update(self._buckets.get(band, ()))
        hits = [(i, jaccard(items, set(self._shingles[i]))) for i in candidates]
        return sorted(((i, j) for i, j in hits if j >= NEAR_JACCARD), key=lambda h: (-h[1], h[0]))


def _bands(sig: tuple[int, ...]) -> list[tuple[int, tuple[int, ...]]]:
    return [(b, sig[b * ROWS : (b + 1) * ROWS]) for b in range(BANDS)]


def near_pairs(texts: Sequence[str], skip: set[int] = frozenset()) -> list[tuple[int, int, float]]:
    """(earlier, later, jaccard) for each text that nearly duplicates an earlier one.

    Each later text is paired with its most similar earlier text only.  Texts in `skip`
    (e.g. exact duplicates already reported) and texts beyond MAX_NEAR_ROWS are ignored.
    """
    index = LshIndex()
    pairs = []
    for i, text in enumerate(texts[:MAX_NEAR_ROWS]):
        if i in skip:
            continue
        items = shingles(text)
        if not items:
            continue
        hits = index.query(items)
        if hits:
            pairs.append((hits[0][0], i, round(hits[0][1], 3)))
        index.add(i, items)
    return pairs
