"""`lima gc`: reclaim what no manifest references.

- orphan attempts: `artifacts/<stage>/<key>/objects/<attempt>/` folders that the manifest at that
  key does not name (a publish that failed or lost a race, or the attempt a forced re-run
  replaced), or every attempt of a key that has no manifest at all;
- unfinished local writes (`.part-*` files of a killed process);
- abandoned S3 multipart uploads (an upload killed mid-way keeps its parts, billed, invisible);
- abandoned training run folders (`train-runs/train-<key16>/<run id>/`, `lima.train.layout`):
  every run folder of a key whose train artifact is published (its models were copied into the
  artifact; the checkpoints are only resume points), and run folders that hold no complete
  epoch checkpoint (a run killed before its first epoch ended).

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
    runs: list[tuple[str, int, int, str]] = field(default_factory=list)
    """(training run folder key, objects, bytes, why it is abandoned)"""
    skipped: list[str] = field(default_factory=list)
    """Keys left alone, with the reason."""
    applied: bool = False

    @property
    def bytes(self) -> int:
        return (
            sum(a[2] for a in self.attempts)
            + sum(t[1] for t in self.temporary)
            + sum(r[2] for r in self.runs)
        )

    def lines(self) -> list[str]:
        verb = "removed" if self.applied else "would remove"
        out = [
            f"{verb} {uri} ({count} objects, {size:,} bytes)" for uri, count, size in self.attempts
        ]
        out += [f"{verb} unfinished write {uri} ({size:,} bytes)" for uri, size in self.temporary]
        out += [
            f"{verb} training run {uri} ({count} objects, {size:,} bytes; {why})"
            for uri, count, size, why in self.runs
        ]
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
    _abandoned_runs(store, cutoff, garbage)
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


def _abandoned_runs(store: ArtifactStore, cutoff: float, garbage: Garbage) -> None:
    from lima.train import layout

    root = store.key_of(layout.RUNS_DIR) + "/"
    published = set()
    for object_key in store.manifest_keys("train"):
        key = object_key.removesuffix("/manifest.json").rsplit("/", 1)[-1]
        published.add(layout.key_folder(key))
    runs: dict[tuple[str, str], list[ObjectStat]] = defaultdict(list)
    for item in store.backend.list_stats(root):
        parts = item.key.removeprefix(root).split("/")
        if len(parts) >= 3:  # key folder / run (or a legacy epoch folder) / path
            runs[(parts[0], parts[1])].append(item)
    for (key_folder, run), items in sorted(runs.items()):
        if max(i.modified for i in items) > cutoff:
            continue  # written recently: a run may still be going
        if key_folder in published:
            why = "its train artifact is published"
        elif not _has_complete_epoch(items, root + f"{key_folder}/{run}/"):
            why = "no complete epoch checkpoint"
        else:
            continue  # an unpublished key's resume point
        folder = f"{root}{key_folder}/{run}"
        garbage.runs.append((folder, len(items), sum(i.size for i in items), why))


def _has_complete_epoch(items: list[ObjectStat], prefix: str) -> bool:
    """A run folder (or legacy epoch folder) holding an epoch with its state and rank 0's done
    marker (the full check, every rank and digests, is the resume's)."""
    from lima.train import layout

    names = {i.key.removeprefix(prefix) for i in items}
    if layout.STATE in names:  # a legacy epoch folder itself
        return layout.done_marker(0) in names
    folders = {n.split("/", 1)[0] for n in names if n.endswith("/" + layout.STATE)}
    return any(f"{f}/{layout.done_marker(0)}" in names for f in folders)


def _delete(store: ArtifactStore, garbage: Garbage) -> None:
    backend: Any = store.backend
    for folder, _, _ in garbage.attempts:
        backend.delete_prefix(folder + "/")
    for folder, _, _, _ in garbage.runs:
        backend.delete_prefix(folder + "/")
    for key, _ in garbage.temporary:
        backend.delete(key)
    for key, upload_id in garbage.uploads:
        backend.abort_upload(key, upload_id)
    log.info("gc: %d attempts, %d temporary files, %d uploads, %d training runs",
             len(garbage.attempts), len(garbage.temporary), len(garbage.uploads),
             len(garbage.runs))  # fmt: skip
