"""Exact (normalised text hash) and near (MinHash LSH candidates, exact Jaccard check) dedup.

Signatures are computed where the docs are read (inside Ray tasks, `lima.curate.minhash`); the
LSH index lives on the driver, which visits docs in source, file and line order so the first
occurrence is kept. LSH only proposes candidates: its bands are chosen so that a pair at the
threshold is proposed with probability >= 0.999, and the true Jaccard similarity of the two
responses' shingles decides.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from datasketch import LeanMinHash, MinHashLSH

from lima.curate.minhash import SCHEME, SEED
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


def text_hash(text: str) -> str:
    return hashlib.blake2b(normalise(text).encode(), digest_size=16).hexdigest()


def lean(values: np.ndarray) -> LeanMinHash:
    return LeanMinHash(seed=SEED, hashvalues=values.astype(np.uint64), scheme=SCHEME)


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
        self.threshold, self.shingle_size = threshold, shingle_size
        self.seen: dict[str, Doc] = {}
        self.kept: list[Doc] = []
        # Shingle sets of recently compared kept docs; the others are recomputed from the text
        # (keeping every set would cost ~1 GB on a full dump).
        self._shingles: OrderedDict[int, set[bytes]] = OrderedDict()
        self.lsh = (
            MinHashLSH(
                threshold=threshold, num_perm=num_perm, params=lsh_bands(threshold, num_perm)
            )
            if near
            else None
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
        minhash = lean(np.asarray(item.minhash))
        mine = set(shingles(response_text(item), self.shingle_size))
        best: tuple[float, int] | None = None
        for name in self.lsh.query(minhash):
            index = int(name)
            value = _jaccard(mine, self._shingle_set(index))
            if value >= self.threshold and (best is None or (value, -index) > (best[0], -best[1])):
                best = (value, index)
        if best is not None:
            similarity = {"metric": "jaccard", "value": round(best[0], 4)}
            return "near_duplicate", self.kept[best[1]], similarity
        self.lsh.insert(str(len(self.kept)), minhash)
        self.kept.append(item)
        return None

    def _shingle_set(self, index: int) -> set[bytes]:
        found = self._shingles.get(index)
        if found is None:
            found = set(shingles(response_text(self.kept[index]), self.shingle_size))
            self._shingles[index] = found
            if len(self._shingles) > SHINGLE_CACHE:
                self._shingles.popitem(last=False)
        else:
            self._shingles.move_to_end(index)
        return found


def _jaccard(a: set[bytes], b: set[bytes]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 0.0
