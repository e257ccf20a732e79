"""Exact (normalised text hash) and near (MinHash LSH candidates, exact Jaccard check) dedup.

Signatures are computed where the docs are read (inside Ray tasks, `lima.curate.minhash`); the
LSH index lives on the driver, which visits docs in source, file and line order so the first
occurrence is kept. LSH only proposes candidates: its bands are chosen so that a pair at the
threshold is proposed with probability >= 0.999, and the true Jaccard similarity of the two
responses' shingles decides. The index (`BandIndex`) proposes exactly the candidates datasketch's
`MinHashLSH` does with the same bands, from one dict per band keyed by the band's bytes (30x
less time per doc than datasketch's per-band storage layer, which was most of the driver's
dedup time).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

import numpy as np

from lima.curate.minhash import BUCKETS, sketches
from lima.curate.ngrams import words
from lima.curate.records import Doc, Rejection, reject
from lima.curate.stats import Stats
from lima.curate.text import normalise


def shingles(text: str, size: int) -> list[bytes]:
    """The word n-grams the exact check compares (the same n-grams `lima.curate.minhash`
    hashes into the signatures: the whole text when it is shorter than `size` words)."""
    words = normalise(text).split()
    if len(words) <= size:
        return [" ".join(words).encode()] if words else [b""]
    return [" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)]


def shingle_set(text: str, size: int) -> set[str]:
    """The set of `shingles(text, size)` as `str` (the same n-grams, not encoded), built in C by
    `map` and `zip`: 2x faster than the list of bytes, and the strings keep their hash for the
    many intersections that follow."""
    tokens = words(text)
    if len(tokens) <= size:
        return {" ".join(tokens)}
    return set(map(" ".join, zip(*(tokens[i:] for i in range(size)), strict=False)))


def text_hash(text: str) -> str:
    return hashlib.blake2b(normalise(text).encode(), digest_size=16).hexdigest()


SHINGLE_CACHE = 4096
CANDIDATE_RECALL = 0.999
"""Probability that LSH proposes a pair whose Jaccard similarity equals the threshold."""


def lsh_bands(threshold: float, num_perm: int, recall: float = CANDIDATE_RECALL) -> tuple[int, int]:
    """(bands, rows) with the most rows per band (fewest false candidates) whose probability
    1 - (1 - t^rows)^bands of proposing a pair at similarity t is at least `recall`."""
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= recall:
            best = (bands, rows)
    return best


class BandIndex:
    """MinHash LSH over `bands` bands of `rows` values: a doc's candidates are the docs that
    share every value of at least one band with it (datasketch's `MinHashLSH` with
    `params=(bands, rows)`: the first bands x rows values, the same candidates)."""

    def __init__(self, bands: int, rows: int) -> None:
        self.width = rows * 4  # bytes of one band of uint32 values
        self.tables: list[dict[bytes, list[int]]] = [{} for _ in range(bands)]

    def keys(self, signature: Any) -> list[bytes]:
        raw = np.asarray(signature).astype(np.uint32, copy=False).tobytes()
        width = self.width
        return [raw[i * width : (i + 1) * width] for i in range(len(self.tables))]

    def query(self, keys: list[bytes]) -> set[int]:
        found: set[int] = set()
        for table, key in zip(self.tables, keys, strict=True):
            hit = table.get(key)
            if hit:
                found.update(hit)
        return found

    def insert(self, keys: list[bytes], index: int) -> None:
        for table, key in zip(self.tables, keys, strict=True):
            table.setdefault(key, []).append(index)


def response_text(item: Doc) -> str:
    """What near-dedup compares: the assistant turns (the document, as datatrove hashes it)."""
    return "\n".join(item.conversations[1::2])


def where(item: Doc) -> dict[str, Any]:
    """How a rejection names another doc: its source, file, row and the id the file gave it."""
    out = {"source": item.source, "file": item.file, "row": item.row}
    if item.source_id is not None:
        out["id"] = item.source_id
    return out


class Deduplicator:
    """Drops docs whose exact hash was already kept, or whose responses have a true shingle
    Jaccard similarity >= `threshold` with a kept doc's (MinHash LSH finds the candidates)."""

    def __init__(
        self,
        *,
        exact: bool,
        near: bool,
        threshold: float,
        num_perm: int,
        shingle_size: int = 5,
    ) -> None:
        self.exact, self.near = exact, near
        self.threshold, self.shingle_size, self.num_perm = threshold, shingle_size, num_perm
        self.seen: dict[str, Doc] = {}
        self.kept: list[Doc] = []
        # Bound data of recently kept docs, and shingle sets of the few measured exactly; the
        # others are recomputed from the text (keeping every set would cost ~1 GB on a full dump).
        self._sketches: _Cache[Sketch] = _Cache(SHINGLE_CACHE)
        self._shingles: _Cache[set[str]] = _Cache(SHINGLE_CACHE // 16)
        self.lsh = BandIndex(*lsh_bands(threshold, num_perm)) if near else None

    @classmethod
    def from_spec(cls, dedup: Any) -> Deduplicator:
        """The one reading of `spec.data.dedup` (the curate stage and the benchmark share it)."""
        return cls(
            exact=dedup.exact,
            near=dedup.near,
            threshold=dedup.jaccard_threshold,
            num_perm=dedup.num_perm,
            shingle_size=dedup.shingle_size,
        )

    def __call__(self, docs: Iterable[Doc], stats: Stats) -> Iterator[Doc | Rejection]:
        for item in docs:
            found = self.check(item)
            if found is None:
                yield item
                continue
            rule, other, similarity = found
            stats.count_drop(item.source, rule)
            named = where(other)
            detail = (
                f"{rule.replace('_', ' ')} of {named['source']} {named['file']} row {named['row']}"
            )
            yield reject(
                item.source,
                item.file,
                item.row,
                rule,
                detail,
                item.conversations[0],
                collided_with=named,
                similarity=similarity,
            )

    def check(self, item: Doc) -> tuple[str, Doc, dict[str, Any]] | None:
        """(rule, the kept doc it duplicates, measured similarity), or None to keep it."""
        key = item.hash
        if self.exact and key is not None:
            if key in self.seen:
                return (
                    "exact_duplicate",
                    self.seen[key],
                    {"metric": "normalised_text", "value": 1.0},
                )
            self.seen[key] = item
        if self.lsh is None or item.minhash is None:
            return None
        keys = self.lsh.keys(item.minhash)
        mine = self._own_sketch(item)
        candidates = sorted(self.lsh.query(keys))
        best: tuple[float, int] | None = None
        grams: set[str] | None = None
        bounds = _bounds(mine, [self._sketch(index) for index in candidates])
        for index, bound in zip(candidates, bounds, strict=True):
            if bound < self.threshold:  # the exact value is at most the bound
                continue
            if grams is None:
                grams = shingle_set(response_text(item), self.shingle_size)
            value = _jaccard(grams, self._shingle_set(index))
            if value >= self.threshold and (best is None or (value, -index) > (best[0], -best[1])):
                best = (value, index)
        if best is not None:
            similarity = {"metric": "jaccard", "value": round(best[0], 4)}
            return "near_duplicate", self.kept[best[1]], similarity
        self.lsh.insert(keys, len(self.kept))
        self._sketches.put(len(self.kept), mine)  # the next near copy compares against it
        if grams is not None:
            self._shingles.put(len(self.kept), grams)
        self.kept.append(item)
        return None

    def _own_sketch(self, item: Doc) -> Sketch:
        """The doc's bound data, computed with its signature where it was read (`item.sketch`,
        dropped here: the deduplicator keeps what it needs) or now from its text."""
        found, item.sketch = item.sketch, None
        return found if found is not None else self._sketch_of(item)

    def _sketch_of(self, item: Doc) -> Sketch:
        (_, counts, distinct), *_ = sketches(
            [response_text(item)], self.shingle_size, self.num_perm, BUCKETS
        )
        return counts, distinct

    def _sketch(self, index: int) -> Sketch:
        found = self._sketches.get(index)
        if found is None:
            found = self._sketch_of(self.kept[index])
            self._sketches.put(index, found)
        return found

    def _shingle_set(self, index: int) -> set[str]:
        found = self._shingles.get(index)
        if found is None:
            found = shingle_set(response_text(self.kept[index]), self.shingle_size)
            self._shingles.put(index, found)
        return found


Sketch = tuple[Any, int]
"""A doc's shingle positions per hash bucket (numpy counts) and its number of distinct shingle
hashes (`lima.curate.minhash.sketches`)."""

_T = TypeVar("_T")


class _Cache(Generic[_T]):
    """The `size` most recently used values, by doc index."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.values: OrderedDict[int, _T] = OrderedDict()

    def get(self, index: int) -> _T | None:
        found = self.values.get(index)
        if found is not None:
            self.values.move_to_end(index)
        return found

    def put(self, index: int, value: _T) -> None:
        self.values[index] = value
        if len(self.values) > self.size:
            self.values.popitem(last=False)


def _bounds(mine: Sketch, others: list[Sketch]) -> list[float]:
    """An upper bound of the Jaccard similarity of a doc's shingles with each of `others`'.

    Equal shingles hash to the same bucket and a bucket counts at least the distinct shingles
    in it, so sum(min(counts_a, counts_b)) >= |a & b|; distinct hashes are at most |a| and |b|.
    Hence |a & b| / |a | b| <= shared / (distinct_a + distinct_b - shared), computed as
    `_jaccard` divides (float64 of integers): a candidate whose bound is below the threshold is
    below it exactly, and is dropped without building shingle sets (most of LSH's candidates
    are: 14 of the benchmark's 11,722 are measured)."""
    if not others:
        return []
    counts, distinct = mine
    shared = np.minimum(np.stack([o[0] for o in others]), counts).sum(axis=1).astype(np.int64)
    union = distinct + np.array([o[1] for o in others], dtype=np.int64) - shared
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, shared / np.maximum(union, 1), np.inf).tolist()


def _jaccard(a: set[Any], b: set[Any]) -> float:
    """|a & b| / |a | b|, the union counted rather than built."""
    common = len(a & b)
    union = len(a) + len(b) - common
    return common / union if union else 0.0
