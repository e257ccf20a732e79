"""`lima gc`: reclaim what no manifest references.

- orphan attempts: `artifacts/<stage>/<key>/objects/<attempt>/` folders that the manifest at that
  key does not name (a publish that failed or lost a race, or the attempt a forced re-run
  replaced), or every attempt of a key that has no manifest at all;
- unfinished local writes (`.part-*` files of a killed process);
- abandoned S3 multipart uploads (an upload killed mid-way keeps its parts, billed, invisible).

Only what is older than `min_age_s` is touched: an attempt still being uploaded by a running
stage has fresh objects and is left alone. A key whose manifest is unreadable is never touched
(its attempt is unknown); `lima verify` reports it. Nothing is deleted unless `apply=True`.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from lima.errors import IntegrityError
from lima.store.artifacts import ArtifactStore
from lima.store.backends import FileBackend, ObjectStat

log = logging.getLogger("lima.store.gc")
DEFAULT_MIN_AGE_S = 6 * 3600.0


@dataclass
class Garbage:
    attempts: list[tuple[str, int, int]] = field(default_factory=list)
    """(attempt folder key, objects, bytes)"""
    temporary: list[tuple[str, int]] = field(default_factory=list)
    uploads: list[tuple[str, str]] = field(default_factory=list)
    """(object key, upload id) of unfinished multipart uploads"""
    skipped: list[str] = field(default_factory=list)
    """Keys left alone, with the reason."""
    applied: bool = False

    @property
    def bytes(self) -> int:
        return sum(a[2] for a in self.attempts) + sum(t[1] for t in self.temporary)

    def lines(self) -> list[str]:
        verb = "removed" if self.applied else "would remove"
        out = [
            f"{verb} {uri} ({count} objects, {size:,} bytes)" for uri, count, size in self.attempts
        ]
        out += [f"{verb} unfinished write {uri} ({size:,} bytes)" for uri, size in self.temporary]
        verb = "aborted" if self.applied else "would abort"
        out += [f"{verb} multipart upload {uri} ({upload})" for uri, upload in self.uploads]
        out += [f"kept {reason}" for reason in self.skipped]
        return out


def collect(
    store: ArtifactStore, *, min_age_s: float = DEFAULT_MIN_AGE_S, apply: bool = False
) -> Garbage:
    garbage = Garbage(applied=apply)
    cutoff = time.time() - min_age_s
    _orphan_attempts(store, cutoff, garbage)
    _unfinished_writes(store, cutoff, garbage)
    _abandoned_uploads(store, cutoff, garbage)
    if apply:
        _delete(store, garbage)
    return garbage


def _orphan_attempts(store: ArtifactStore, cutoff: float, garbage: Garbage) -> None:
    root = store.key_of("artifacts") + "/"
    attempts: dict[tuple[str, str], dict[str, list[ObjectStat]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for item in store.backend.list_stats(root):
        parts = item.key.removeprefix(root).split("/")
        if len(parts) >= 5 and parts[2] == "objects":  # stage/key/objects/attempt/path
            attempts[(parts[0], parts[1])][parts[3]].append(item)
    for (stage, key), by_attempt in sorted(attempts.items()):
        try:
            manifest = store.manifest(stage, key)
        except IntegrityError as error:
            garbage.skipped.append(f"{stage}/{key}: {error}")
            continue
        kept = manifest.attempt if manifest is not None else None
        for attempt, items in sorted(by_attempt.items()):
            newest = max(i.modified for i in items)
            if attempt == kept or newest > cutoff:
                continue
            folder = store.artifact_prefix(stage, key) + f"/objects/{attempt}"
            garbage.attempts.append((folder, len(items), sum(i.size for i in items)))


def _unfinished_writes(store: ArtifactStore, cutoff: float, garbage: Garbage) -> None:
    backend = store.backend
    if not isinstance(backend, FileBackend):
        return
    for item in backend.list_stats(store.key_of(), temporary=True):
        if item.modified < cutoff:
            garbage.temporary.append((item.key, item.size))


def _abandoned_uploads(store: ArtifactStore, cutoff: float, garbage: Garbage) -> None:
    backend: Any = store.backend
    if not hasattr(backend, "abandoned_uploads"):
        return
    for key, upload_id, initiated in backend.abandoned_uploads(store.key_of() + "/"):
        if initiated < cutoff:
            garbage.uploads.append((key, upload_id))


def _delete(store: ArtifactStore, garbage: Garbage) -> None:
    backend: Any = store.backend
    for folder, _, _ in garbage.attempts:
        backend.delete_prefix(folder + "/")
    for key, _ in garbage.temporary:
        backend.delete(key)
    for key, upload_id in garbage.uploads:
        backend.abort_upload(key, upload_id)
    log.info("gc: %d attempts, %d temporary files, %d uploads", len(garbage.attempts),
             len(garbage.temporary), len(garbage.uploads))  # fmt: skip
