"""Exact (normalised text hash) and near (MinHash LSH, datasketch) duplicate removal.

Signatures are computed where the docs are read (inside Ray tasks); the LSH index lives on the
driver, which visits docs in a fixed order so the first occurrence wins deterministically.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Iterator
from functools import lru_cache

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

from lima.curate.records import Item, reject
from lima.curate.stats import Stats
from lima.curate.text import normalise

SEED = 1
SCHEME = "affine32"


@lru_cache(maxsize=4)
def _template(num_perm: int) -> MinHash:
    # Building the permutations is the costly part of MinHash(); reuse them.
    return MinHash(num_perm=num_perm, seed=SEED, hashfunc=zlib.crc32, scheme=SCHEME)


def shingles(text: str, size: int) -> list[bytes]:
    words = normalise(text).split()
    if len(words) <= size:
        return [" ".join(words).encode()] if words else [b""]
    return [" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)]


def signature(text: str, size: int, num_perm: int) -> np.ndarray:
    """MinHash hash values (uint32-range, stored as uint32 to halve what crosses processes).

    crc32 instead of datasketch's default sha1: deterministic across processes and ~5x faster.
    """
    template = _template(num_perm)
    minhash = MinHash(
        num_perm=num_perm,
        seed=SEED,
        hashfunc=zlib.crc32,
        permutations=template.permutations,
        scheme=SCHEME,
    )
    minhash.update_batch(shingles(text, size))
    return minhash.hashvalues.astype(np.uint32)


def text_hash(text: str) -> str:
    return hashlib.blake2b(normalise(text).encode(), digest_size=16).hexdigest()


def lean(values: np.ndarray) -> LeanMinHash:
    return LeanMinHash(seed=SEED, hashvalues=values.astype(np.uint64), scheme=SCHEME)


class Deduplicator:
    """Drops docs whose exact hash or MinHash neighbourhood was already seen."""

    def __init__(self, *, exact: bool, near: bool, threshold: float, num_perm: int) -> None:
        self.exact, self.near = exact, near
        self.seen: set[str] = set()
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm) if near else None
        self.count = 0

    def __call__(self, docs: Iterable[Item], stats: Stats) -> Iterator[Item]:
        for item in docs:
            rule = self.check(item)
            if rule:
                stats.count_drop(item["source"], rule)
                yield reject(
                    item["source"],
                    item["file"],
                    item["row"],
                    rule,
                    item.get("_dup_of", ""),
                    item["conversations"][0],
                )
                continue
            yield item

    def check(self, item: Item) -> str | None:
        key = item.get("hash")
        if self.exact and key is not None:
            if key in self.seen:
                return "exact_duplicate"
            self.seen.add(key)
        if self.lsh is not None and item.get("minhash") is not None:
            minhash = lean(np.asarray(item["minhash"]))
            found = self.lsh.query(minhash)
            if found:
                item["_dup_of"] = f"near-duplicate of {sorted(found)[0]}"
                return "near_duplicate"
            self.count += 1
            self.lsh.insert(f"{item['source']}:{item['file']}:{item['row']}:{self.count}", minhash)
        return None
