"""Planning the units of parallel work: one shard per small file, byte ranges for Posts.xml."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lima.curate.readers.rows import plan_ranges
from lima.curate.readers.stackexchange import group_of, site_of
from lima.curate.records import Rejection, reject
from lima.settings import Settings
from lima.spec.data import DataSpec, SourceKind
from lima.store import expand_uri, localize_uri

SHARD_BYTES = int(os.environ.get("LIMA_CURATE_SHARD_BYTES", 8 * 2**20))


def expand_sources(spec: DataSpec, settings: Settings | None) -> dict[str, list[str]]:
    """Every file of every source; raises SourceError naming the first URI that matches nothing
    (before any work starts)."""
    return {source.name: expand_uri(source.uri, settings) for source in spec.sources}


def plan(
    spec: DataSpec,
    files: dict[str, list[str]],
    scratch: Path,
    settings: Settings | None,
    shard_bytes: int = SHARD_BYTES,
) -> tuple[list[dict[str, Any]], list[Rejection]]:
    """(shards, rejections of whole files): empty files and sites of the other group."""
    shards: list[dict[str, Any]] = []
    skipped: list[Rejection] = []
    rules = spec.filters.stackexchange
    for source in spec.sources:
        for uri in files[source.name]:
            local = str(localize_uri(uri, scratch, settings))
            if os.path.getsize(local) == 0:
                skipped.append(reject(source.name, uri, "file", "empty_file"))
                continue
            base = {"source": source.name, "kind": source.kind.value, "uri": uri, "path": local}
            if source.kind is not SourceKind.stackexchange:
                shards.append({**base, "start": 0, "end": 0, "site": ""})
                continue
            site = site_of(uri, source.site)
            if source.group != "all" and group_of(site, rules) != source.group:
                continue  # read by the source of the other group
            for start, end in plan_ranges(local, shard_bytes):
                shards.append({**base, "start": start, "end": end, "site": site})
    for index, shard in enumerate(shards):
        shard["id"] = index
    return shards, skipped
