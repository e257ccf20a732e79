"""Per-source counters that every step updates and that merge across Ray tasks."""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import pairwise
from typing import Any

HISTOGRAM_EDGES_CHARS = [0, 250, 500, 1000, 1500, 2000, 3000, 4096, 6000, 8000, 16000]
HISTOGRAM_EDGES_TOKENS = [0, 64, 128, 256, 384, 512, 768, 1024, 1536, 2048, 4096]


class Stats:
    """read / kept / dropped-by-rule counts per source, plus free-form counters."""

    def __init__(self) -> None:
        self.read: Counter[str] = Counter()
        self.passed: Counter[str] = Counter()
        self.dropped: dict[str, Counter[str]] = defaultdict(Counter)

    def count_read(self, source: str, n: int = 1) -> None:
        self.read[source] += n

    def count_passed(self, source: str, n: int = 1) -> None:
        self.passed[source] += n

    def count_drop(self, source: str, rule: str, n: int = 1) -> None:
        self.dropped[source][rule] += n

    def merge(self, other: Stats) -> Stats:
        self.read.update(other.read)
        self.passed.update(other.passed)
        for source, counts in other.dropped.items():
            self.dropped[source].update(counts)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": dict(self.read),
            "passed": dict(self.passed),
            "dropped": {s: dict(c) for s, c in self.dropped.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stats:
        stats = cls()
        stats.read.update(data.get("read", {}))
        stats.passed.update(data.get("passed", {}))
        for source, counts in data.get("dropped", {}).items():
            stats.dropped[source].update(counts)
        return stats


def histogram(values: list[int], edges: list[int]) -> dict[str, int]:
    """Counts per half-open bin `[lo, hi)`; the last bin is open-ended (`>=lo`)."""
    bins = {f"{lo}-{hi}": 0 for lo, hi in pairwise(edges)}
    bins[f">={edges[-1]}"] = 0
    for value in values:
        for lo, hi in pairwise(edges):
            if lo <= value < hi:
                bins[f"{lo}-{hi}"] += 1
                break
        else:
            bins[f">={edges[-1]}"] += 1
    return bins
