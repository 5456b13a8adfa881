"""Exact and near-duplicate detection for training examples, in pure Python.

Exact duplicates: identical after normalisation (Unicode NFKC, case-folded, runs of
whitespace collapsed).

Near duplicates: Jaccard similarity of word 3-gram shingle sets >= NEAR_JACCARD.
Candidates come from MinHash-style locality-sensitive hashing, then every candidate pair
is verified with the exact Jaccard, so the LSH can only miss pairs, never invent them.

    signature: one-permutation hashing (Li, Owen & Zhang, NIPS 2012): each shingle is
               hashed once (crc32); bin = h mod K, and the bin keeps the minimum h // K;
               empty bins (texts with few shingles) are densified by rotation
               (Shrivastava & Li, ICML 2014).  For two sets, P[bin values equal] ~= J(A, B).
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
BUCKET_CAP = 2  # members kept per band bucket (see LshIndex)
GATE = 0.55  # signature estimate below which a candidate is not verified (true J >= 0.8 is
#              estimated below 0.55 with probability < 1e-3 at K = 32: binomial tail)
_WORD = re.compile(r"\w+", re.UNICODE)
_SPACE = re.compile(r"\s+")
_M1, _M2 = 0x9E3779B1, 0x85EBCA77
_EMPTY_BIN = 1 << 40  # larger than any crc32 // K, so an empty bin never matches a real one


def normalise(text: str) -> str:
    """The form two texts must share to count as exact duplicates."""
    if not text.isascii():  # NFKC cannot change ASCII; skipping it halves the cost
        text = unicodedata.normalize("NFKC", text)
    return _SPACE.sub(" ", text.casefold()).strip()


def shingles(text: str) -> set[int]:
    """32-bit hashes of the word 3-grams of an already normalised text (all words if fewer
    than 3).  Each word is hashed once (crc32) and a 3-gram's hash mixes its words' hashes
    with odd multipliers (Knuth's golden-ratio and murmur3's constants), which is ~2x
    faster than hashing every joined 3-gram string."""
    words = [zlib.crc32(w.encode()) for w in _WORD.findall(text)]
    if not words:
        return set()
    if len(words) < SHINGLE_WORDS:
        words += [0] * (SHINGLE_WORDS - len(words))
    grams = zip(words, words[1:], words[2:], strict=False)  # the shorter slices end it
    return {(a * _M1 ^ b * _M2 ^ c) & 0xFFFFFFFF for a, b, c in grams}


def signature(hashes: Iterable[int]) -> tuple[int, ...]:
    """One-permutation MinHash signature with K bins, densified (see module docstring)."""
    bins = [_EMPTY_BIN] * K
    for h in hashes:
        b, v = h % K, h // K
        if v < bins[b]:
            bins[b] = v
    if _EMPTY_BIN in bins and any(v != _EMPTY_BIN for v in bins):
        # Rotation densification (Shrivastava & Li, ICML 2014): an empty bin borrows the
        # next non-empty bin to its right (circularly), offset by the distance t, so two short
        # texts do not "agree" on bins that are merely empty in both.  One right-to-left
        # pass over the bins twice finds every empty bin's nearest right neighbour.
        filled = list(bins)
        nearest, at = _EMPTY_BIN, 0
        for j in range(2 * K - 1, -1, -1):
            v = bins[j % K]
            if v != _EMPTY_BIN:
                nearest, at = v, j
            elif j < K:
                filled[j] = nearest + (at - j) * _EMPTY_BIN
        bins = filled
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
    """Band buckets of signatures; `query` returns verified near-duplicates.

    A bucket keeps only its first BUCKET_CAP members: in templated data (every row "Where
    is order N? ...") a few bands are shared by all rows, and uncapped buckets would make
    the search quadratic.  A true near-duplicate still meets its twin in the bands that
    hold their own (non-template) shingles; the cap can only miss pairs, never invent them.
    Candidates are gated by the signature's Jaccard estimate (fraction of agreeing bins,
    compared as packed 8-bit fingerprints) before the exact Jaccard is computed.
    """

    def __init__(self) -> None:
        # One table per band, keyed by the band's ROWS bin values.
        self._buckets: list[dict[tuple[int, ...], list[int]]] = [{} for _ in range(BANDS)]
        # Compact unsigned 32-bit arrays: a set of Python ints costs ~15x more memory.
        self._shingles: dict[int, array] = {}
        self._fingerprints: dict[int, int] = {}

    def add(self, index: int, items: set[int]) -> None:
        sig = signature(items)
        self._store(index, items, _fingerprint(sig), _bands(sig))

    def _store(self, index: int, items: set[int], fp: int, bands: list[tuple[int, ...]]) -> None:
        self._shingles[index] = array("I", items)
        self._fingerprints[index] = fp
        for table, key in zip(self._buckets, bands, strict=True):
            bucket = table.get(key)
            if bucket is None:
                table[key] = [index]
            elif len(bucket) < BUCKET_CAP:
                bucket.append(index)

    def query(self, items: set[int], *, add_as: int | None = None) -> list[tuple[int, float]]:
        """(index, jaccard) of indexed sets with Jaccard >= NEAR_JACCARD, best first;
        then index `items` under `add_as` if given (one signature for both)."""
        sig = signature(items)
        bands, fp = _bands(sig), _fingerprint(sig)
        candidates: set[int] = set()
        for table, key in zip(self._buckets, bands, strict=True):
            members = table.get(key)
            if members:
                candidates.update(members)
        hits = []
        fingerprints, need = self._fingerprints, GATE * K
        for i in candidates:
            if _agreeing_bins(fp, fingerprints[i]) < need:
                continue
            stored = self._shingles[i]
            common = len(items.intersection(stored))  # no set built for the stored array
            j = common / (len(items) + len(stored) - common)
            if j >= NEAR_JACCARD:
                hits.append((i, j))
        if add_as is not None:
            self._store(add_as, items, fp, bands)
        return sorted(hits, key=lambda h: (-h[1], h[0])) if hits else hits


_LOW_BYTE = (0xFF).__and__


def _fingerprint(sig: tuple[int, ...]) -> int:
    """The low byte of every bin packed into one int (b-bit minwise hashing, Li & Konig 2010)."""
    return int.from_bytes(bytes(map(_LOW_BYTE, sig)), "little")


def _agreeing_bins(a: int, b: int) -> int:
    """Bins whose 8-bit fingerprints agree: an upper bound on the bins that are equal (equal
    bins always agree; unequal ones by chance, 1 in 256), so gating on it never rejects a
    pair that the full signature would pass.  Counted as the zero bytes of a ^ b, in C."""
    return (a ^ b).to_bytes(K, "little").count(0)


_BAND_STARTS = range(0, K, ROWS)


def _bands(sig: tuple[int, ...]) -> list[tuple[int, ...]]:
    return [sig[i : i + ROWS] for i in _BAND_STARTS]


def near_pairs(texts: Sequence[str], skip: set[int] = frozenset()) -> list[tuple[int, int, float]]:
    """(earlier, later, jaccard) for each text that nearly duplicates an earlier one.

    `texts` should already be normalised (see `normalise`); the profile passes the same
    normalised keys it uses for exact duplicates.
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
        hits = index.query(items, add_as=i)
        if hits:
            pairs.append((hits[0][0], i, round(hits[0][1], 3)))
    return pairs
