"""What one Ray task does with one shard: read, apply the source's rules, join, hash and sign
for dedup; the driver is left with dedup itself (`lima.curate.pipeline`)."""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from lima.curate.dedup import response_text, text_hash
from lima.curate.minhash import BUCKETS, sketches
from lima.curate.readers import stackexchange
from lima.curate.readers.authored import AuthoredReader
from lima.curate.readers.base import Reader
from lima.curate.readers.best_answers import pack_best
from lima.curate.readers.natural_instructions import NaturalInstructionsReader
from lima.curate.readers.wikihow import WikiHowReader
from lima.curate.readers.writingprompts import WritingPromptsReader
from lima.curate.records import Doc, Rejection, rejection_lines
from lima.curate.stats import Stats
from lima.spec.data import DataSpec


def _local(row: dict[str, Any]) -> dict[str, Any]:
    """On a multi-node cluster the driver's download of an s3:// source is not on this node:
    fetch it here (credentials come from the pod's LIMA_S3_* environment)."""
    if os.path.exists(row["path"]) or not row["uri"].startswith("s3://"):
        return row
    from lima.settings import load_settings
    from lima.store import localize_uri

    scratch = Path(tempfile.gettempdir()) / "lima-curate"
    return {**row, "path": str(localize_uri(row["uri"], scratch, load_settings()))}


def scan_task(row: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Pass 1 over a Stack Exchange byte range (`stackexchange.scan`): the range's offsets, its
    best answer per question packed for the driver's merge, its rejections already serialised
    as rejected.jsonl lines (`lines`; the payload holds their count)."""
    spec = DataSpec.model_validate(config)
    row = _local(row)
    stats = Stats()
    part = stackexchange.scan(
        row["path"],
        row["start"],
        row["end"],
        source=row["source"],
        min_score=spec.filters.stackexchange.min_score,
        max_chars=spec.filters.max_field_chars,
        stats=stats,
    )
    lines, count = rejection_lines(_with_uri(part.rejected, row))
    best, part.best, part.rejected = pack_best(part.best), {}, []
    payload = (part, best, count, stats.to_dict())
    return {"id": row["id"], "payload": pickle.dumps(payload, protocol=5), "lines": lines}


def extract_task(row: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Pass 2: the shard's docs (with their exact-dedup hashes and near-dedup signatures),
    rejections and statistics."""
    spec = DataSpec.model_validate(config)
    stats = Stats()
    items = list(read_items(row, spec, stats))
    lines, count = rejection_lines(items)
    kept = [item for item in items if isinstance(item, Doc)]
    for item in kept:
        item.hash = text_hash("\n".join(item.conversations))
    _sign(kept, spec)
    payload = (kept, count, stats.to_dict())
    return {"id": row["id"], "payload": pickle.dumps(payload, protocol=5), "lines": lines}


ShardItem = Doc | Rejection
"""What a shard yields."""


def read_items(row: dict[str, Any], spec: DataSpec, stats: Stats) -> Iterator[ShardItem]:
    """Every item of one shard; a Stack Exchange shard reads the rows its `selection` names."""
    row = _local(row)
    kind, path, source, limit = (
        row["kind"],
        row["path"],
        row["source"],
        spec.filters.max_field_chars,
    )
    filters = spec.filters
    if kind == "stackexchange":
        items = stackexchange.read_selected(
            path,
            pickle.loads(row["selection"]),
            source=source,
            site=row["site"],
            rules=filters.stackexchange,
            seed=spec.seed,
            max_chars=limit,
            stats=stats,
        )
    else:
        items = _reader(kind, path, source, spec, stats).read()
    yield from _with_uri(items, row)


def _reader(kind: str, path: str, source: str, spec: DataSpec, stats: Stats) -> Reader:
    filters, limit = spec.filters, spec.filters.max_field_chars
    common = {"source": source, "path": path, "stats": stats, "max_chars": limit}
    if kind == "wikihow":
        return WikiHowReader(**common, rules=filters.wikihow)
    if kind == "writingprompts":
        return WritingPromptsReader(**common, rules=filters.writingprompts)
    if kind == "natural_instructions":
        return NaturalInstructionsReader(
            **common, rules=filters.natural_instructions, seed=spec.seed
        )
    return AuthoredReader(**common)


def _with_uri(items: Iterable[ShardItem], row: dict[str, Any]) -> Iterator[ShardItem]:
    """Provenance names the URI the user wrote, not a local copy."""
    path, uri = row["path"], row["uri"]
    for item in items:
        if item.file == path:
            item.file = uri
        yield item


def _sign(docs: list[Doc], spec: DataSpec) -> None:
    """Near-dedup signatures over the response text (the document, as datatrove hashes it),
    computed for the whole shard in one call, with the shingle counts dedup bounds Jaccard
    similarities with (so the driver builds shingle sets only for the few close candidates)."""
    dedup = spec.dedup
    if not dedup.near:
        return
    texts = [response_text(item) for item in docs]
    for item, (values, counts, distinct) in zip(
        docs, sketches(texts, dedup.shingle_size, dedup.num_perm, BUCKETS), strict=True
    ):
        item.minhash, item.sketch = values, (counts, distinct)
