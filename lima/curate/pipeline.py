"""The curation pipeline: shards as Ray tasks, then joins, dedup, splits and selection."""

from __future__ import annotations

import pickle
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from lima.curate import extract
from lima.curate.dedup import Deduplicator, text_hash
from lima.curate.parallel import run_shards
from lima.curate.readers.stackexchange import join, merge_best, select, top_answers
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
    shards: int = 0


def scan_stackexchange(
    spec: DataSpec,
    shards: list[dict[str, Any]],
    workers: int,
    cpus: float,
    out: Filtered,
    rejected: TextIO,
) -> None:
    """Pass 1 over every Stack Exchange shard; each such shard then carries the `selection` of
    rows that pass 2 reads (top answers by file, their questions)."""
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
    for shard, part in zip(se, parts, strict=True):
        selection = select(part, tops.get(shard["uri"], {}))
        shard["selection"] = pickle.dumps(selection, protocol=5)
    for shard in shards:
        shard.setdefault("selection", b"")  # every shard row has the same keys


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
    candidates: list[Doc] = []
    se_parts: dict[tuple[str, str], dict[str, Any]] = {}
    results = run_shards(extract.extract_task, shards, {"config": config}, workers, cpus)
    for done, (shard, payload) in enumerate(zip(shards, results, strict=True), start=1):
        items, rejected_text, rejected_count, stats = payload
        out.stats.merge(Stats.from_dict(stats))
        rejected.write(rejected_text)  # serialised by the worker, in shard order
        out.rejected += rejected_count
        _collect(shard, items, candidates, se_parts)
        report(completed=done, total=len(shards), note=f"read {shard['source']}")
    docs = _with_se_docs(spec, candidates, se_parts, out.stats, rejected, out)
    for item in docs:
        item.hash = text_hash("\n".join(item.conversations))
    dedup = spec.dedup
    deduplicator = Deduplicator(
        exact=dedup.exact,
        near=dedup.near,
        threshold=dedup.jaccard_threshold,
        num_perm=dedup.num_perm,
        shingle_size=dedup.shingle_size,
    )
    for item in deduplicator(docs, out.stats):
        if isinstance(item, Rejection):
            out.rejected += _write(rejected, [item])
        else:
            out.stats.count_passed(item.source)
            out.docs.append(item)
    return out


def _collect(
    shard: dict, items: list[Doc | StackAnswer | StackQuestion], docs: list[Doc], se_parts: dict
) -> None:
    if shard["kind"] != SourceKind.stackexchange.value:
        docs.extend(i for i in items if isinstance(i, Doc))
        return
    part = se_parts.setdefault(
        (shard["source"], shard["uri"]),
        {"site": shard["site"], "answers": [], "questions": {}, "at": len(docs)},
    )
    for item in items:
        if isinstance(item, StackAnswer):
            part["answers"].append(item)
        elif isinstance(item, StackQuestion):
            part["questions"][item.qid] = item


def _with_se_docs(
    spec: DataSpec, docs: list[Doc], se_parts: dict, stats: Stats, rejected: TextIO, out: Filtered
) -> list[Doc]:
    """Join Stack Exchange answers to their questions and order all docs by source, then file."""
    rules = spec.filters.stackexchange
    for (source, _uri), part in se_parts.items():
        signatures = {a.aid: a.minhash for a in part["answers"]}
        for item in join(part["answers"], part["questions"], source, part["site"], stats, rules):
            if isinstance(item, Rejection):
                out.rejected += _write(rejected, [item])
                continue
            item.minhash = signatures.get(int(item.row))
            docs.append(item)
    order = {s.name: i for i, s in enumerate(spec.sources)}
    return sorted(docs, key=lambda d: (order[d.source], d.file, _row_key(d.row)))


def _row_key(row: str) -> tuple[int, str]:
    return (int(row), "") if row.isdigit() else (0, row)


def _write(handle: TextIO, items: Iterable[Rejection]) -> int:
    count = 0
    for item in items:
        handle.write(item.line())
        count += 1
    return count
