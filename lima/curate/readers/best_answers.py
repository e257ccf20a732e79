"""Each question's best answer across the ranges of a Stack Exchange dump, merged on the driver.

Pass 1 keeps, per byte range, each question's best answer as a dict (`Best`: question id ->
(score, -answer id)). The driver holds the merge of every range's dict until pass 1 ends: that is
the one part of its memory that grows with the dump (O(questions)). As a dict it costs ~180 bytes
a question (measured: 174 -> 223 MiB of driver for 1x -> 4x the benchmark's 200,000 posts; a few GB
for Stack Overflow's ~24 M questions); here it is rows of three int64 (24 bytes a question), merged
with numpy in batches. The dict's rule is kept exactly: the highest score wins, then the lowest
answer id. Numbers that do not fit int64 (a hand-edited dump can hold any digits) stay in a small
dict merged by that same rule, so no row is lost or crashes the merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Best = dict[int, tuple[int, int]]  # question id -> (score, -answer id): max() picks the top answer

_LOW, _HIGH = -(2**63), 2**63 - 1
_COMPACT_AT = 1 << 16
"""Rows waiting to be merged before a merge, at least (and at least as many as merged so far, so
the merging stays O(n log n) in all)."""


@dataclass
class PackedBest:
    """One range's `Best` as the driver receives it."""

    rows: np.ndarray  # (n, 3) int64: question id, score, -answer id
    wide: Best = field(default_factory=dict)  # entries with a number outside int64


def pack_best(best: Best) -> PackedBest:
    """`best` as int64 rows (in the worker: the driver does no per-question Python work)."""
    try:
        rows = [(qid, score, neg_id) for qid, (score, neg_id) in best.items()]
        return PackedBest(np.array(rows, dtype=np.int64).reshape(-1, 3))
    except OverflowError:
        fits = {q: k for q, k in best.items() if min(q, *k) >= _LOW and max(q, *k) <= _HIGH}
        wide = {q: k for q, k in best.items() if q not in fits}
        return PackedBest(pack_best(fits).rows, wide)


def merge_best(into: Best, other: Best) -> Best:
    """`other` merged into `into` by the top-answer rule (the dict form of `BestAnswers`)."""
    for parent, key in other.items():
        if key > into.get(parent, (-(10**9), 0)):
            into[parent] = key
    return into


def top_answers(best: Best, min_score: int) -> dict[int, int]:
    """Question id -> its top answer's id, for the questions whose top answer can pass."""
    return {qid: -neg_id for qid, (score, neg_id) in best.items() if score >= min_score}


class BestAnswers:
    """The merge of the ranges' `PackedBest` of one file, in the order they are added."""

    def __init__(self) -> None:
        self.rows = np.empty((0, 3), dtype=np.int64)  # merged: one row per question, sorted
        self.pending: list[np.ndarray] = []
        self.pending_rows = 0
        self.wide: Best = {}

    def add(self, packed: PackedBest) -> None:
        self.pending.append(packed.rows)
        self.pending_rows += len(packed.rows)
        merge_best(self.wide, packed.wide)
        if self.pending_rows >= max(_COMPACT_AT, len(self.rows)):
            self._merge()

    def _merge(self) -> None:
        if not self.pending:
            return
        rows = np.concatenate([self.rows, *self.pending])
        rows = rows[np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))]
        last = np.ones(len(rows), dtype=bool)  # the last row of each question is its best
        last[:-1] = rows[1:, 0] != rows[:-1, 0]
        self.rows, self.pending, self.pending_rows = rows[last], [], 0

    def top_answers(self, min_score: int) -> dict[int, int]:
        """Question id -> its top answer's id, for the questions whose top answer can pass
        (`top_answers` of the dict merge, the same result)."""
        self._merge()
        rows = self.rows[self.rows[:, 1] >= min_score]
        top = dict(zip(rows[:, 0].tolist(), [-n for n in rows[:, 2].tolist()], strict=True))
        if self.wide:
            # A merged entry is at least the rows' entry of its question: when it is below the
            # floor, so was that one, which is then not in `top` either.
            merged = merge_best(self._keys(self.wide), self.wide)
            top.update((q, -neg_id) for q, (score, neg_id) in merged.items() if score >= min_score)
        return top

    def _keys(self, of: Best) -> Best:
        """The merged rows' entries of the questions in `of` (as a `Best`)."""
        ids = self.rows[:, 0]
        out: Best = {}
        for qid in of:
            if _LOW <= qid <= _HIGH:
                at = int(np.searchsorted(ids, qid))
                if at < len(ids) and ids[at] == qid:
                    out[qid] = (int(self.rows[at, 1]), int(self.rows[at, 2]))
        return out
