"""MinHash signatures with numpy: word n-grams hashed without building n-gram strings.

datasketch's `MinHash.update_batch` needs one bytes object per n-gram, and building those strings
was most of the signing time. Here each word is hashed once and the n-gram hashes are rolled from
the word hashes with numpy; the permutations are datasketch's affine32 ones (seed 1, MurmurHash3
pre-mix, `a * h + b mod 2^32`), so the signatures go straight into datasketch's LSH index as
`LeanMinHash(scheme="affine32")` (`dedup.py`). Values differ from datasketch's crc32-of-string
shingles, the estimate of Jaccard similarity is the same.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np

from lima.curate.ngrams import words as normalised_words

SEED = 1
SCHEME = "affine32"
BUCKETS = 1024
"""Hash buckets of the shingle counts near-dedup bounds Jaccard similarities with (14 exact
checks of the benchmark's 11,722 LSH candidates; 12 with 4096 buckets)."""
# MurmurHash3's 32-bit finalizer, as datasketch pre-mixes every input hash (scheme affine32).
_FMIX32 = (16, np.uint32(0x85EBCA6B), 13, np.uint32(0xC2B2AE35), 16)
# Odd 64-bit multiplier (golden ratio) mixing successive word hashes into one n-gram hash.
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def shingle_hashes(text: str, size: int) -> np.ndarray:
    """32-bit hashes of the word n-grams of the normalised text (the whole text when shorter).

    Each word is hashed once (crc32) and the n-gram hash is a polynomial of its words' hashes,
    computed for all positions at once: no n-gram string is ever built.
    """
    words = normalised_words(text)
    if not words:
        return np.zeros(1, dtype=np.uint32)
    word_hashes = np.fromiter(
        map(zlib.crc32, map(str.encode, words)), dtype=np.uint64, count=len(words)
    )
    width = min(size, len(words))
    positions = len(words) - width + 1
    combined = np.zeros(positions, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(width):
            combined = combined * _MULTIPLIER + word_hashes[offset : offset + positions]
    return (combined ^ (combined >> np.uint64(32))).astype(np.uint32)


@lru_cache(maxsize=4)
def permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 parameters for seed 1: odd multipliers `a`, offsets `b`."""
    gen = np.random.RandomState(SEED)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def _fmix(values: np.ndarray) -> np.ndarray:
    s1, m1, s2, m2, s3 = _FMIX32
    values = values ^ (values >> s1)
    values = values * m1
    values = values ^ (values >> s2)
    values = values * m2
    return values ^ (values >> s3)


def signatures(texts: list[str], size: int, num_perm: int) -> list[np.ndarray]:
    """One uint32 signature of `num_perm` values per text."""
    return [sketch[0] for sketch in sketches(texts, size, num_perm, buckets=0)]


def signature(text: str, size: int, num_perm: int) -> np.ndarray:
    return signatures([text], size, num_perm)[0]


Sketch = tuple[np.ndarray, np.ndarray | None, int]
"""(signature, shingle positions per hash bucket or None, distinct shingle hashes)."""


def sketches(texts: list[str], size: int, num_perm: int, buckets: int) -> list[Sketch]:
    """Per text: its signature and, with `buckets` > 0, what near-dedup bounds Jaccard
    similarities with (`lima.curate.dedup`): how many n-gram positions hash to each of `buckets`
    buckets (equal n-grams share a bucket, so a bucket's count is at least the number of distinct
    n-grams in it) and the number of distinct n-gram hashes (at most the number of distinct
    n-grams). Both come from the hashes the signature is computed from."""
    a, b = permutations(num_perm)
    out: list[Sketch] = []
    with np.errstate(over="ignore"):
        for text in texts:
            hashes = shingle_hashes(text, size)
            signature = (_fmix(hashes)[:, None] * a + b).min(axis=0)
            if buckets:
                counts = np.bincount(hashes & np.uint32(buckets - 1), minlength=buckets)
                out.append((signature, _small(counts), len(np.unique(hashes))))
            else:
                out.append((signature, None, 0))
    return out


def _small(counts: np.ndarray) -> np.ndarray:
    """The counts in the smallest unsigned type that holds them (never clipped)."""
    top = int(counts.max()) if len(counts) else 0
    return counts.astype(np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else np.uint32)
