"""What one Ray task does with one shard: read, apply the source's rules, sign for dedup."""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lima.curate.dedup import signature
from lima.curate.readers import (
    authored,
    natural_instructions,
    stackexchange,
    wikihow,
    writingprompts,
)
from lima.curate.records import Item
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
    """Pass 1 over a Stack Exchange byte range: best answer per question (integers only)."""
    spec = DataSpec.model_validate(config)
    row = _local(row)
    best = stackexchange.scan_top_answers(
        row["path"], row["start"], row["end"], spec.filters.max_field_chars
    )
    return {"id": row["id"], "payload": pickle.dumps(best, protocol=5)}


def extract_task(row: dict[str, Any], config: dict[str, Any], top: Any = None) -> dict[str, Any]:
    """Pass 2: the shard's docs (with dedup signatures), rejections and statistics."""
    import ray

    spec = DataSpec.model_validate(config)
    tops = ray.get(top) if isinstance(top, ray.ObjectRef) else (top or {})
    stats = Stats()
    items = [_sign(item, spec) for item in read_items(row, spec, tops.get(row["uri"], {}), stats)]
    return {"id": row["id"], "payload": pickle.dumps((items, stats.to_dict()), protocol=5)}


def read_items(
    row: dict[str, Any], spec: DataSpec, top: dict[int, int], stats: Stats
) -> Iterator[Item]:
    row = _local(row)
    kind, path, source, limit = (
        row["kind"],
        row["path"],
        row["source"],
        spec.filters.max_field_chars,
    )
    filters = spec.filters
    if kind == "stackexchange":
        items = stackexchange.read_shard(
            path,
            row["start"],
            row["end"],
            source=source,
            site=row["site"],
            top=top,
            rules=filters.stackexchange,
            seed=spec.seed,
            max_chars=limit,
            stats=stats,
        )
    elif kind == "wikihow":
        items = wikihow.read(path, source, filters.wikihow, limit, stats)
    elif kind == "writingprompts":
        items = writingprompts.read(path, source, filters.writingprompts, limit, stats)
    elif kind == "natural_instructions":
        items = natural_instructions.read(
            path, source, filters.natural_instructions, limit, spec.seed, stats
        )
    else:
        items = authored.read(path, source, limit, stats)
    for item in items:
        if "file" in item and item["file"] == path:
            item["file"] = row["uri"]  # provenance names the URI the user wrote, not a local copy
        yield item


def _sign(item: Item, spec: DataSpec) -> Item:
    """Near-dedup signature over the response text (the document, as datatrove hashes it)."""
    dedup = spec.dedup
    if item["type"] == "se_answer":
        text = item["markdown"]
    elif item["type"] == "doc":
        text = "\n".join(item["conversations"][1::2])
    else:
        return item
    if dedup.near:
        item["minhash"] = signature(text, dedup.shingle_size, dedup.num_perm)
    return item
