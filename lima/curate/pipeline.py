"""The curation pipeline: shards as Ray tasks (read, rules, joins, signatures), dedup on the
driver as their results arrive."""

from __future__ import annotations

import pickle
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from lima.curate import extract
from lima.curate.decontam import paused_gc
from lima.curate.dedup import Deduplicator
from lima.curate.parallel import run_shards
from lima.curate.readers.best_answers import BestAnswers
from lima.curate.readers.stackexchange import Scan, question_offsets, select
from lima.curate.records import Doc, Rejection
from lima.curate.shards import expand_sources, plan
from lima.curate.stats import Stats
from lima.settings import Settings
from lima.spec.data import DataSpec, SourceKind

Progress = Callable[..., None]


@dataclass
class Filtered:
    """Docs that passed every per-source rule and dedup, in a deterministic order."""

    docs: list[Doc] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    rejected: int = 0
    duplicates: list[Rejection] = field(default_factory=list)
    """Dedup's rejections, written by `assemble` once it knows which kept copies are held out."""
    shards: int = 0


def scan_stackexchange(
    spec: DataSpec,
    shards: list[dict[str, Any]],
    workers: int,
    cpus: float,
    out: Filtered,
    rejected: BinaryIO,
) -> None:
    """Pass 1 over every Stack Exchange shard; each such shard then carries the `selection` of
    rows that pass 2 reads: its top answers and the offsets of their questions."""
    se = [s for s in shards if s["kind"] == SourceKind.stackexchange.value]
    config = spec.model_dump(mode="json")
    best: dict[str, BestAnswers] = defaultdict(BestAnswers)
    parts = []
    results = run_shards(extract.scan_task, se, {"config": config}, workers, cpus)
    for shard, ((part, packed, rejected_count, stats), lines) in zip(se, results, strict=True):
        out.stats.merge(Stats.from_dict(stats))
        rejected.write(lines)  # serialised by the worker, in shard order
        out.rejected += rejected_count
        best[shard["uri"]].add(packed)
        parts.append(part)
    plan_pass_2(se, parts, best, spec.filters.stackexchange.min_score)
    for shard in shards:
        shard.setdefault("selection", b"")  # every shard row has the same keys


def plan_pass_2(
    shards: list[dict[str, Any]], parts: list[Scan], best: dict[str, BestAnswers], floor: int
) -> None:
    """Give each Stack Exchange shard its pass-2 `selection`: its top answers and where their
    questions are (anywhere in the file), from every range's pass 1."""
    tops = {uri: per_file.top_answers(floor) for uri, per_file in best.items()}
    question_at: dict[str, dict[int, int]] = defaultdict(dict)
    for shard, part in zip(shards, parts, strict=True):  # file order: the last row of an id wins
        question_at[shard["uri"]].update(question_offsets(part, tops.get(shard["uri"], {})))
    answer_ids = {uri: set(top.values()) for uri, top in tops.items()}
    for shard, part in zip(shards, parts, strict=True):
        uri = shard["uri"]
        selection = select(part, answer_ids.get(uri, set()), question_at[uri])
        shard["selection"] = pickle.dumps(selection, protocol=5)


def filter_and_dedup(
    spec: DataSpec,
    settings: Settings | None,
    scratch: Path,
    rejected: BinaryIO,
    *,
    workers: int = 1,
    cpus: float = 1,
    progress: Progress | None = None,
    shard_bytes: int | None = None,
) -> Filtered:
    """Read every source, apply its rules, then exact and near dedup across sources.

    Every dropped row is written to `rejected` as one JSON line as soon as it is known.
    """
    # The driver creates many small acyclic objects (results, docs, shingle sets); automatic
    # collections would traverse all of them again and again (0.1-0.2 s of a 200,000-post run).
    with paused_gc():
        return _filter_and_dedup(
            spec, settings, scratch, rejected, workers, cpus, progress, shard_bytes
        )


def _filter_and_dedup(
    spec: DataSpec,
    settings: Settings | None,
    scratch: Path,
    rejected: BinaryIO,
    workers: int,
    cpus: float,
    progress: Progress | None,
    shard_bytes: int | None,
) -> Filtered:
    report = progress or (lambda **_: None)
    files = expand_sources(spec, settings)  # SourceError before any work
    shards, skipped = plan(
        spec, files, scratch, settings, **({"shard_bytes": shard_bytes} if shard_bytes else {})
    )
    out = Filtered(shards=len(shards))
    for item in skipped:
        out.stats.count_drop(item.source, item.rule)
    out.rejected += _write(rejected, skipped)
    report(completed=0, total=len(shards), note="pass 1: top answers")
    scan_stackexchange(spec, shards, workers, cpus, out, rejected)
    config = spec.model_dump(mode="json")
    deduplicated = _Streamed(spec)
    results = run_shards(extract.extract_task, shards, {"config": config}, workers, cpus)
    for done, (shard, ((items, rejected_count, stats), lines)) in enumerate(
        zip(shards, results, strict=True), start=1
    ):
        out.stats.merge(Stats.from_dict(stats))
        rejected.write(lines)
        out.rejected += rejected_count
        deduplicated.add(items)  # while later shards are read
        report(completed=done, total=len(shards), note=f"read {shard['source']}")
    for item in deduplicated.finish(out):
        if isinstance(item, Rejection):
            out.duplicates.append(item)
            out.rejected += 1
        else:
            out.stats.count_passed(item.source)
            out.docs.append(item)
    return out


class _Streamed:
    """Dedup of pass 2's docs, shard by shard, as soon as each doc's place in the final order
    is known.

    Dedup visits docs in source (as listed), file and row order. While the shards' docs arrive
    in that order (a Stack Exchange dump's ids grow through the file), each shard's docs are
    deduplicated on arrival, while later shards are still read; `finish` checks that the docs
    seen so far are exactly the first ones of the final order and deduplicates the rest, or, if
    they are not, deduplicates all of them again in the final order. The output is the same
    either way.
    """

    def __init__(self, spec: DataSpec) -> None:
        self.spec = spec
        self.order = {s.name: i for i, s in enumerate(spec.sources)}
        self.docs: list[Doc] = []  # every doc, in shard order
        self.stats = Stats()
        self.deduplicator = Deduplicator.from_spec(spec.dedup)
        self.streamed: list[Doc] = []
        self.results: list[Doc | Rejection] = []
        self.in_order = True

    def _key(self, item: Doc) -> tuple[int, str, tuple[int, str]]:
        return (self.order[item.source], item.file, _row_key(item.row))

    def add(self, docs: list[Doc]) -> None:
        self.docs += docs
        if not (self.in_order and docs):
            return
        batch = sorted(docs, key=self._key)
        if self.streamed and self._key(batch[0]) < self._key(self.streamed[-1]):
            self.in_order = False  # `finish` deduplicates everything in the final order
            return
        self.streamed += batch
        self.results += self.deduplicator(batch, self.stats)

    def finish(self, out: Filtered) -> list[Doc | Rejection]:
        """Every doc's dedup result, in the final order; dedup's counts go to `out.stats`."""
        final = sorted(self.docs, key=self._key)
        done = len(self.streamed)
        if self.in_order and all(a is b for a, b in zip(self.streamed, final, strict=False)):
            self.results += self.deduplicator(final[done:], self.stats)
        else:
            self.stats = Stats()
            self.results = list(Deduplicator.from_spec(self.spec.dedup)(final, self.stats))
        out.stats.merge(self.stats)
        return self.results


def _row_key(row: str) -> tuple[int, str]:
    return (int(row), "") if row.isdigit() else (0, row)


def _write(handle: BinaryIO, items: Iterable[Rejection]) -> int:
    count = 0
    for item in items:
        handle.write(item.line().encode())
        count += 1
    return count
