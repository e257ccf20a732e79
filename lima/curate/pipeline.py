"""The curation pipeline: shards as Ray tasks, then joins, dedup, splits and selection."""

from __future__ import annotations

import pickle
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from lima.curate import extract
from lima.curate.decontam import paused_gc
from lima.curate.dedup import Deduplicator, text_hash
from lima.curate.parallel import run_shards
from lima.curate.readers.stackexchange import (
    join,
    merge_best,
    question_offsets,
    read_questions,
    select,
    top_answers,
)
from lima.curate.records import Doc, Rejection, StackAnswer, StackQuestion
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
    rejected: TextIO,
) -> dict[str, dict[int, int]]:
    """Pass 1 over every Stack Exchange shard; each such shard then carries the `selection` of
    rows that pass 2 reads (the top answers). Returns, per file, the byte offsets of the
    questions whose top answer can pass the score rule (question id -> offset): the driver
    reads the few whose answer passes every rule after pass 2 (`_read_questions`)."""
    se = [s for s in shards if s["kind"] == SourceKind.stackexchange.value]
    config = spec.model_dump(mode="json")
    best: dict[str, dict] = defaultdict(dict)
    parts = []
    results = run_shards(extract.scan_task, se, {"config": config}, workers, cpus)
    for shard, (part, rejected_text, rejected_count, stats) in zip(se, results, strict=True):
        out.stats.merge(Stats.from_dict(stats))
        rejected.write(rejected_text)
        out.rejected += rejected_count
        merge_best(best[shard["uri"]], part.best)
        part.best = {}  # merged: only the offsets are still needed
        parts.append(part)
    floor = spec.filters.stackexchange.min_score
    tops = {uri: top_answers(per_file, floor) for uri, per_file in best.items()}
    questions: dict[str, dict[int, int]] = defaultdict(dict)
    for shard, part in zip(se, parts, strict=True):
        top = tops.get(shard["uri"], {})
        selection = select(part, top, questions=False)
        shard["selection"] = pickle.dumps(selection, protocol=5)
        questions[shard["uri"]].update(question_offsets(part, top))  # file order: last wins
    for shard in shards:
        shard.setdefault("selection", b"")  # every shard row has the same keys
    return questions


def filter_and_dedup(
    spec: DataSpec,
    settings: Settings | None,
    scratch: Path,
    rejected: TextIO,
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
    rejected: TextIO,
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
    question_at = scan_stackexchange(spec, shards, workers, cpus, out, rejected)
    config = spec.model_dump(mode="json")
    paths = {shard["uri"]: shard["path"] for shard in shards}
    joined = _Joined(spec, question_at, paths)
    results = run_shards(extract.extract_task, shards, {"config": config}, workers, cpus)
    for done, (shard, payload) in enumerate(zip(shards, results, strict=True), start=1):
        items, rejected_text, rejected_count, stats = payload
        out.stats.merge(Stats.from_dict(stats))
        rejected.write(rejected_text)  # serialised by the worker, in shard order
        out.rejected += rejected_count
        joined.add(shard, items)  # joined and deduplicated while later shards are read
        report(completed=done, total=len(shards), note=f"read {shard['source']}")
    for item in joined.finish(out, rejected):
        if isinstance(item, Rejection):
            out.duplicates.append(item)
            out.rejected += 1
        else:
            out.stats.count_passed(item.source)
            out.docs.append(item)
    return out


class _Joined:
    """Pass 2's results, shard by shard: Stack Exchange answers joined to their questions and
    every doc deduplicated as soon as its place in the final order is known.

    Questions are read from the file by the driver, by the offsets pass 1 recorded, only for the
    answers that passed every rule (one row each). Dedup visits docs in source (as listed), file
    and row order. While the shards' docs arrive in that order (a Stack Exchange dump's ids grow
    through the file), each shard's docs are deduplicated on arrival, while later shards are
    still read; `finish` checks that the docs seen so far are exactly the first ones of the final
    order and deduplicates the rest, or, if they are not, deduplicates all of them again in the
    final order. The output is the same either way.
    """

    def __init__(
        self, spec: DataSpec, question_at: dict[str, dict[int, int]], paths: dict[str, str]
    ) -> None:
        self.spec, self.question_at, self.paths = spec, question_at, paths
        self.order = {s.name: i for i, s in enumerate(spec.sources)}
        self.docs: list[Doc] = []  # docs of the other sources, in shard order
        self.parts: dict[tuple[str, str], dict[str, Any]] = {}  # per Stack Exchange file
        # Counted apart and merged in `finish`, so stats.json lists the rules in the same order
        # as when the joins and dedup ran after the last shard.
        self.read_stats, self.join_stats, self.dedup_stats = Stats(), Stats(), Stats()
        self.deduplicator = self._deduplicator()
        self.streamed: list[Doc] = []
        self.results: list[Doc | Rejection] = []
        self.in_order = True

    def _deduplicator(self) -> Deduplicator:
        return Deduplicator.from_spec(self.spec.dedup)

    def _key(self, item: Doc) -> tuple[int, str, tuple[int, str]]:
        return (self.order[item.source], item.file, _row_key(item.row))

    def add(self, shard: dict[str, Any], items: list[Doc | StackAnswer | StackQuestion]) -> None:
        if shard["kind"] == SourceKind.stackexchange.value:
            batch = self._join(shard, [i for i in items if isinstance(i, StackAnswer)])
        else:
            batch = [i for i in items if isinstance(i, Doc)]
            self.docs.extend(batch)
        for item in batch:
            item.hash = text_hash("\n".join(item.conversations))
        if not (self.in_order and batch):
            return
        batch = sorted(batch, key=self._key)
        if self.streamed and self._key(batch[0]) < self._key(self.streamed[-1]):
            self.in_order = False  # `finish` deduplicates everything in the final order
            return
        self.streamed += batch
        self.results += self.deduplicator(batch, self.dedup_stats)

    def _join(self, shard: dict[str, Any], answers: list[StackAnswer]) -> list[Doc]:
        source, uri, site = shard["source"], shard["uri"], shard["site"]
        part = self.parts.setdefault((source, uri), {"read": [], "joined": [], "docs": []})
        offsets = self.question_at.get(uri, {})
        rules = self.spec.filters.stackexchange
        items = read_questions(
            self.paths[uri],
            sorted({offsets[a.qid] for a in answers if a.qid in offsets}),
            source=source,
            file=uri,
            site=site,
            rules=rules,
            seed=self.spec.seed,
            max_chars=self.spec.filters.max_field_chars,
            stats=self.read_stats,
        )
        questions: dict[int, StackQuestion] = {}
        for item in items:
            if isinstance(item, Rejection):
                part["read"].append(item)
            else:
                questions[item.qid] = item
        sketched = {a.aid: (a.minhash, a.sketch) for a in answers}
        batch = []
        for item in join(answers, questions, source, site, self.join_stats, rules):
            if isinstance(item, Rejection):
                part["joined"].append(item)
                continue
            item.minhash, item.sketch = sketched.get(int(item.row), (None, None))
            batch.append(item)
        part["docs"] += batch
        return batch

    def finish(self, out: Filtered, rejected: TextIO) -> list[Doc | Rejection]:
        """Write the joins' rejections; every doc's dedup result, in the final order."""
        for step in ("read", "joined"):
            for part in self.parts.values():
                out.rejected += _write(rejected, part[step])
        out.stats.merge(self.read_stats).merge(self.join_stats)
        docs = self.docs + [item for part in self.parts.values() for item in part["docs"]]
        final = sorted(docs, key=self._key)
        done = len(self.streamed)
        if self.in_order and all(a is b for a, b in zip(self.streamed, final, strict=False)):
            self.results += self.deduplicator(final[done:], self.dedup_stats)
        else:
            self.dedup_stats = Stats()
            self.results = list(self._deduplicator()(final, self.dedup_stats))
        out.stats.merge(self.dedup_stats)
        return self.results


def _row_key(row: str) -> tuple[int, str]:
    return (int(row), "") if row.isdigit() else (0, row)


def _write(handle: TextIO, items: Iterable[Rejection]) -> int:
    count = 0
    for item in items:
        handle.write(item.line())
        count += 1
    return count
