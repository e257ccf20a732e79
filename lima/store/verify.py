"""Checking what the store serves: one artifact's objects, and every artifact of an experiment.

Cheap checks (one stat per object: present, right size) run on every cache hit; deep checks read
and hash every object (`lima run --verify`, `lima verify`, and the small report artifact that
`lima report` hands out).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from lima.errors import IntegrityError, StoreError
from lima.store.artifacts import ArtifactStore, Manifest
from lima.store.backends import CHUNK, Backend

log = logging.getLogger("lima.store")


def object_problems(backend: Backend, manifest: Manifest, *, deep: bool = False) -> list[str]:
    """One line per object that is missing, of the wrong size or (deep) of the wrong sha256."""
    problems = []
    for entry in manifest.objects:
        where = backend.uri(entry.key)
        found = backend.stat(entry.key)
        if found is None:
            problems.append(f"{entry.path}: missing ({where})")
        elif found.size != entry.size:
            problems.append(
                f"{entry.path}: {found.size} bytes, manifest says {entry.size} ({where})"
            )
        elif deep and _sha256(backend, entry.key) != entry.sha256:
            problems.append(f"{entry.path}: sha256 differs from the manifest ({where})")
    return problems


def _sha256(backend: Backend, key: str) -> str:
    digest = hashlib.sha256()
    stream: Any = backend.open(key)
    try:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    finally:
        stream.close()
        with contextlib.suppress(AttributeError):
            stream.release_conn()  # an S3 response goes back to the pool
    return digest.hexdigest()


@dataclass
class ArtifactCheck:
    stage: str
    key: str
    uri: str = ""
    objects: int = 0
    size: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_artifact(
    store: ArtifactStore, stage: str, key: str, *, deep: bool, upstream: dict[str, Manifest]
) -> tuple[ArtifactCheck, Manifest | None]:
    """Check one artifact: its manifest, its objects, and that its inputs are the artifacts
    published upstream (a lineage whose links do not match is not the lineage it claims)."""
    check = ArtifactCheck(stage, key)
    try:
        manifest = store.manifest(stage, key)
    except StoreError as error:
        check.problems.append(str(error))
        return check, None
    if manifest is None:
        check.problems.append(f"no manifest at {store.uri(stage, key)}")
        return check, None
    check.uri, check.objects, check.size = manifest.uri, len(manifest.objects), manifest.size
    try:
        check.problems.extend(store.problems(manifest, deep=deep))
    except StoreError as error:
        check.problems.append(str(error))
    for ref in manifest.inputs:
        source = upstream.get(ref.stage)
        if source is not None and (source.key, source.digest) != (ref.key, ref.digest):
            check.problems.append(
                f"input {ref.stage} is sha256:{ref.digest[:16]} at {ref.key}, but the run used "
                f"sha256:{source.digest[:16]} at {source.key}"
            )
    return check, manifest


def verify_run(
    store: ArtifactStore, record: dict[str, Any], *, deep: bool = True
) -> list[ArtifactCheck]:
    """Check every artifact a run record names (cached or computed), in stage order."""
    checks: list[ArtifactCheck] = []
    upstream: dict[str, Manifest] = {}
    for entry in record.get("stages", []):
        stage, key = entry.get("stage"), entry.get("key")
        if not isinstance(stage, str) or not isinstance(key, str) or not key:
            continue  # a stage that failed or was skipped has no artifact
        if entry.get("status") not in ("done", "cached"):
            continue
        try:
            check, manifest = check_artifact(store, stage, key, deep=deep, upstream=upstream)
        except StoreError as error:  # a key in the record that is not a key (tampered record)
            check, manifest = ArtifactCheck(stage, key, problems=[str(error)]), None
        checks.append(check)
        if manifest is not None:
            upstream[stage] = manifest
    return checks


SMALL_ARTIFACT_BYTES = 64 << 20
"""Artifacts up to this size are hashed whenever they are served (a report, a curated set,
verdicts: well under a second); larger ones (checkpoints) get the stat check, and are hashed
when downloaded (`fetch`) or by `lima verify`."""


def verify_served(store: ArtifactStore, manifest: Manifest) -> Manifest:
    """Check an artifact before handing it out (report, lineage): deep when it is small."""
    store.verify(manifest, deep=manifest.size <= SMALL_ARTIFACT_BYTES)
    return manifest


def verify_experiment(
    store: ArtifactStore, experiment: str, *, run_id: str | None = None, deep: bool = True
) -> tuple[list[str], bool]:
    """`lima verify`: one line per artifact of the run (default: the latest) and whether all
    are intact. Deep (every object hashed) unless `deep=False` (sizes only)."""
    records = store.runs(experiment)
    if run_id is not None:
        records = [r for r in records if str(r.get("run_id", "")).startswith(run_id)]
    if not records:
        raise StoreError(f"no runs recorded for experiment {experiment!r}")
    record = records[-1]
    checks = verify_run(store, record, deep=deep)
    lines = [f"run {record.get('run_id', '?')} of {experiment}: {len(checks)} artifacts"]
    for check in checks:
        if check.ok:
            lines.append(
                f"  ok       {check.stage:<9} {check.key[:12]}  {check.objects} objects, "
                f"{check.size:,} bytes"
            )
        else:
            lines.append(f"  DAMAGED  {check.stage:<9} {check.key[:12]}")
            lines += [f"           {problem}" for problem in check.problems]
    return lines, all(check.ok for check in checks)


class SkipUnreadable:
    """The store as a plan reads it: an unreadable manifest counts as no artifact.

    The runner then computes the stage again and its publish replaces the bad manifest
    (`ArtifactStore.publish`), instead of failing every run until someone deletes it by hand.
    """

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    def manifest(self, stage: str, key: str) -> Manifest | None:
        try:
            return self.store.manifest(stage, key)
        except IntegrityError as error:
            log.warning("%s; computing it again", error)
            return None
