"""Vectorised MinHash signatures: estimates agree with the true Jaccard of the shingle sets, and
the values work in datasketch's LSH index as the dedup step uses them."""

from __future__ import annotations

import random

import numpy as np
from datasketch import LeanMinHash, MinHashLSH

from lima.curate.minhash import SCHEME, SEED, shingle_hashes, signatures
from lima.curate.text import normalise

WORDS = [
    "malt",
    "hop",
    "yeast",
    "barley",
    "lager",
    "stout",
    "cask",
    "keg",
    "pint",
    "brew",
    "wort",
    "mash",
    "boil",
    "ferment",
]


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) + str(rng.randrange(50)) for _ in range(words))


def _true_jaccard(a: str, b: str, size: int = 5) -> float:
    def grams(text: str) -> set[tuple[str, ...]]:
        words = normalise(text).split()
        return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}

    x, y = grams(a), grams(b)
    return len(x & y) / len(x | y)


def test_estimates_follow_the_true_jaccard():
    rng = random.Random(0)
    base = _text(rng, 400)
    words = base.split()
    for changed in (5, 20, 60, 200):
        edited = list(words)
        for i in rng.sample(range(len(words)), changed):
            edited[i] = "changed"
        other = " ".join(edited)
        a, b = signatures([base, other], 5, 256)
        assert a.dtype == np.uint32 and a.shape == (256,)
        assert abs(float((a == b).mean()) - _true_jaccard(base, other)) < 0.1


def test_deterministic_case_and_punctuation_blind_and_short_texts():
    first = signatures(["Hello, World! How are you today?", ""], 5, 128)
    again = signatures(["hello world how ARE you today", ""], 5, 128)
    assert (first[0] == again[0]).all() and (first[1] == again[1]).all()
    assert len(shingle_hashes("two words", 5)) == 1  # shorter than n: the whole text, once
    assert signatures([], 5, 128) == []


def test_signatures_index_in_datasketch_lsh():
    rng = random.Random(1)
    base = _text(rng, 300)
    near = base.replace(base.split()[10], "changed", 1)
    unrelated = _text(rng, 300)
    sig_base, sig_near, sig_other = signatures([base, near, unrelated], 5, 128)
    lsh = MinHashLSH(threshold=0.7, num_perm=128)
    lsh.insert("base", LeanMinHash(seed=SEED, hashvalues=sig_base.astype(np.uint64), scheme=SCHEME))
    lean = LeanMinHash(seed=SEED, hashvalues=sig_near.astype(np.uint64), scheme=SCHEME)
    assert lsh.query(lean) == ["base"]
    other = LeanMinHash(seed=SEED, hashvalues=sig_other.astype(np.uint64), scheme=SCHEME)
    assert lsh.query(other) == []
