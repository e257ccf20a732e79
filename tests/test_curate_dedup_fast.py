"""The driver's near-dedup index and its exact check, against the datasketch-based reference
they replaced: the same candidates, the same decisions and measured similarities."""

from __future__ import annotations

import random

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHashLSH

from lima.curate.dedup import (
    BandIndex,
    Deduplicator,
    _bounds,
    _jaccard,
    lsh_bands,
    response_text,
    shingle_set,
    shingles,
    text_hash,
)
from lima.curate.minhash import BUCKETS, SCHEME, SEED, sketches
from lima.curate.records import Doc, Rejection, doc
from lima.curate.stats import Stats

WORDS = ["malt", "hop", "yeast", "barley", "lager", "stout", "cask", "keg", "pint", "brew"]


def texts(seed: int, n: int) -> list[str]:
    """Answers in families of near copies (10-40 % of the words changed), as in the benchmark."""
    rng = random.Random(seed)
    out = []
    for _ in range(n // 8):
        vocabulary = WORDS + [f"w{i}" for i in range(300)]
        base = [rng.choice(vocabulary) for _ in range(rng.randint(3, 120))]
        for _ in range(8):
            rate = rng.choice([0.0, 0.05, 0.1, 0.2, 0.4])
            out.append(" ".join(rng.choice(WORDS) if rng.random() < rate else w for w in base))
    return out


class Reference:
    """The previous Deduplicator: datasketch's LSH, byte-string shingles, set union."""

    def __init__(self, threshold: float, num_perm: int) -> None:
        self.threshold = threshold
        self.seen: dict[str, Doc] = {}
        self.kept: list[Doc] = []
        self.lsh = MinHashLSH(
            threshold=threshold, num_perm=num_perm, params=lsh_bands(threshold, num_perm)
        )

    def check(self, item: Doc):
        if item.hash in self.seen:
            return ("exact_duplicate", self.seen[item.hash].row, 1.0)
        self.seen[item.hash] = item
        minhash = LeanMinHash(
            seed=SEED, hashvalues=np.asarray(item.minhash).astype(np.uint64), scheme=SCHEME
        )
        mine = set(shingles(response_text(item), 5))
        best = None
        for name in self.lsh.query(minhash):
            other = set(shingles(response_text(self.kept[int(name)]), 5))
            value = len(mine & other) / len(mine | other)
            index = int(name)
            if value >= self.threshold and (best is None or (value, -index) > (best[0], -best[1])):
                best = (value, index)
        if best is not None:
            return ("near_duplicate", self.kept[best[1]].row, round(best[0], 4))
        self.lsh.insert(str(len(self.kept)), minhash)
        self.kept.append(item)
        return None


def make_docs(seed: int, n: int, sketched: bool) -> list[Doc]:
    """Docs signed as the shards sign them (with their sketch) or signed only (the
    deduplicator computes the sketch)."""
    answers = texts(seed, n)
    docs = [doc("s", "f", i, [f"q{i % 5}", a]) for i, a in enumerate(answers)]
    for item, (sig, counts, distinct) in zip(docs, sketches(answers, 5, 128, BUCKETS), strict=True):
        item.minhash, item.hash = sig, text_hash("\n".join(item.conversations))
        item.sketch = (counts, distinct) if sketched else None
    return docs


@pytest.mark.parametrize("sketched", [True, False])
def test_decisions_match_the_reference(sketched: bool):
    for seed in range(3):
        docs = make_docs(seed, 400, sketched)
        reference = Reference(0.7, 128)
        want = [reference.check(d) for d in docs]
        got = []
        dedup = Deduplicator(exact=True, near=True, threshold=0.7, num_perm=128)
        for item in dedup(docs, Stats()):
            if isinstance(item, Rejection):
                extra = item.extra or {}
                got.append((item.rule, extra["collided_with"]["row"], extra["similarity"]["value"]))
            else:
                got.append(None)
        assert got == want
        assert 0 < sum(w is None for w in want) < len(want)  # both outcomes exercised


def test_band_index_proposes_datasketch_candidates():
    rng = np.random.default_rng(0)
    for threshold in (0.5, 0.7, 0.9):
        bands, rows = lsh_bands(threshold, 128)
        ours, theirs = BandIndex(bands, rows), MinHashLSH(num_perm=128, params=(bands, rows))
        base = rng.integers(0, 2**32, (30, 128), dtype=np.uint64)
        for i in range(300):
            sig = base[i % 30].copy()
            changed = rng.random(128) < rng.choice([0.0, 0.1, 0.3, 0.6, 1.0])
            sig[changed] = rng.integers(0, 2**32, int(changed.sum()), dtype=np.uint64)
            sig32 = sig.astype(np.uint32)
            lean = LeanMinHash(seed=SEED, hashvalues=sig, scheme=SCHEME)
            keys = ours.keys(sig32)
            assert ours.query(keys) == {int(name) for name in theirs.query(lean)}
            ours.insert(keys, i)
            theirs.insert(str(i), lean)


def test_shingle_sets_and_bounds():
    rng = random.Random(3)
    for text in [*texts(5, 200), "", "one", "a b c d", "a b c d e", "Ünïcode wörds, ok."]:
        assert shingle_set(text, 5) == {s.decode() for s in shingles(text, 5)}
    family = [*texts(7, 160), "", "one", "a a a a a a a a a a a a", "a b " * 40]
    for _ in range(3000):
        a, b = rng.choice(family), rng.choice(family)
        grams_a, grams_b = shingle_set(a, 5), shingle_set(b, 5)
        exact = len(grams_a & grams_b) / len(grams_a | grams_b)
        assert _jaccard(grams_a, grams_b) == exact
        (_, counts_a, distinct_a), (_, counts_b, distinct_b) = sketches([a, b], 5, 128, BUCKETS)
        assert distinct_a <= len(grams_a) <= counts_a.sum()
        assert _bounds((counts_a, distinct_a), [(counts_b, distinct_b)])[0] >= exact
