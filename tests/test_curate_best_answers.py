"""The driver's merge of every range's best answer per question (`BestAnswers`, int64 rows merged
with numpy) must pick exactly what the dict rule picks (`merge_best` + `top_answers`): the highest
score, then the lowest answer id; numbers outside int64 are kept, not lost or crashing."""

from __future__ import annotations

import random

import pytest

from lima.curate.readers import best_answers
from lima.curate.readers.best_answers import (
    BestAnswers,
    merge_best,
    pack_best,
    top_answers,
)


def _ranges(seed: int, count: int, questions: int, huge: bool) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        best = {}
        for _ in range(rng.randint(0, 300)):
            qid = rng.randint(0, questions)
            score, aid = rng.randint(-50, 60), rng.randint(1, 10 * questions)
            if huge and rng.random() < 0.05:
                which = rng.randrange(3)
                big = rng.choice([2**63, 2**70, -(2**64)])
                if which == 0:
                    qid = abs(big) + rng.randint(0, 3)
                elif which == 1:
                    score = big
                else:
                    aid = abs(big)
            key = (score, -aid)
            if key > best.get(qid, (-(10**9), 0)):  # as pass 1 keeps a range's best
                best[qid] = key
        out.append(best)
    return out


@pytest.mark.parametrize("huge", [False, True])
@pytest.mark.parametrize("compact_at", [1, 50, 1 << 16])
def test_same_top_answers_as_the_dict_merge(monkeypatch, huge: bool, compact_at: int):
    monkeypatch.setattr(best_answers, "_COMPACT_AT", compact_at)
    for seed in range(20):
        ranges = _ranges(seed, count=12, questions=400, huge=huge)
        reference: dict = {}
        merged = BestAnswers()
        for best in ranges:
            merge_best(reference, best)
            merged.add(pack_best(best))
        for floor in (-(2**64), -5, 0, 10, 2**63):
            assert merged.top_answers(floor) == top_answers(reference, floor), (seed, floor)


def test_numbers_outside_int64_stay_apart():
    packed = pack_best({1: (5, -2), 2**64: (7, -3), 3: (2**63, -4), 4: (1, -(2**70))})
    assert packed.rows.tolist() == [[1, 5, -2]]
    assert packed.wide == {2**64: (7, -3), 3: (2**63, -4), 4: (1, -(2**70))}
    merged = BestAnswers()
    merged.add(packed)
    merged.add(pack_best({3: (9, -1), 4: (1, -1)}))  # 3 beaten by the huge score; 4 wins
    assert merged.top_answers(0) == {1: 2, 2**64: 3, 3: 4, 4: 1}


def test_empty_ranges():
    merged = BestAnswers()
    merged.add(pack_best({}))
    assert merged.top_answers(10) == {}
