"""Content-addressed artifacts with a manifest written last.

Layout under `<prefix>/`:

    artifacts/<stage>/<key>/objects/<attempt>/<path>  files of one publishing attempt
    artifacts/<stage>/<key>/manifest.json             written last; no manifest, no artifact
    runs/<experiment>/<run-id>.json                   what a run did (stages, cache hits, timings)
    cache/<namespace>/<hash>.json                     small memoised results (judge verdicts)

Each attempt uploads into its own folder, and the manifest points at exactly one attempt, so two
writers racing on the same key can never mix their files: readers see one complete attempt or none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import socket
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from lima.errors import IntegrityError, StoreError
from lima.store.backends import Backend, sha256_file
from lima.store.paths import check_prefix, check_segment, join_key

log = logging.getLogger("lima.store")

TRACKED_PACKAGES = (
    "lima-run",
    "torch",
    "transformers",
    "deepspeed",
    "ray",
    "tokenizers",
    "datasketch",
    "sentence-transformers",
    "minio",
    "pydantic",
)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class ObjectEntry:
    path: str
    """Path inside the artifact (`train.jsonl`, `epoch-5/model.safetensors`)."""
    sha256: str
    size: int
    key: str
    """Full object key in the store."""


@dataclass
class InputRef:
    stage: str
    key: str
    digest: str
    uri: str


@dataclass
class Manifest:
    stage: str
    key: str
    code_version: str
    config: dict[str, Any]
    inputs: list[InputRef]
    objects: list[ObjectEntry]
    started_at: str
    ended_at: str
    duration_s: float
    summary: dict[str, Any] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)
    host: str = ""
    attempt: str = ""
    uri: str = ""

    @property
    def digest(self) -> str:
        """Digest of the artifact's content: every object's path and sha256."""
        return sha256_text(canonical_json(sorted((o.path, o.sha256) for o in self.objects)))

    @property
    def size(self) -> int:
        return sum(o.size for o in self.objects)

    def object(self, path: str) -> ObjectEntry:
        for entry in self.objects:
            if entry.path == path:
                return entry
        raise StoreError(f"artifact {self.uri} has no object {path!r}")

    @property
    def seal(self) -> str:
        """sha256 of every field: a manifest truncated, bit-flipped or edited by hand (a summary
        with a better win rate, an object list pointing elsewhere) no longer matches it."""
        return sha256_text(canonical_json(asdict(self)))

    def to_json(self) -> str:
        body = {**asdict(self), "digest": self.digest, "seal": self.seal}
        return json.dumps(body, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse and check a manifest; ValueError says what is wrong with it."""
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        digest, seal = raw.pop("digest", None), raw.pop("seal", None)
        raw["inputs"] = [InputRef(**i) for i in raw["inputs"]]
        raw["objects"] = [ObjectEntry(**o) for o in raw["objects"]]
        manifest = cls(**raw)
        if digest is not None and digest != manifest.digest:
            raise ValueError("its digest does not match its object list (edited)")
        if seal is not None and seal != manifest.seal:
            raise ValueError("its seal does not match its content (edited or corrupted)")
        return manifest


def artifact_key(stage: str, code_version: str, config: Any, input_digests: dict[str, str]) -> str:
    """The content address of a stage's output."""
    material = canonical_json(
        {"stage": stage, "version": code_version, "config": config, "inputs": input_digests}
    )
    return sha256_text(material)[:32]


class ArtifactStore:
    """Publishes, finds and fetches artifacts on a Backend."""

    def __init__(self, backend: Backend, prefix: str = "lima") -> None:
        self.backend = backend
        self.prefix = check_prefix(prefix)

    def _k(self, *parts: str) -> str:
        """The object key of `parts` under the prefix; each part is a checked segment (or
        segments), so no name read from a run record or a CLI argument can leave the prefix."""
        for part in parts:
            for segment in part.strip("/").split("/"):
                check_segment(segment, "key segment")
        return join_key(self.prefix, *parts)

    def key_of(self, *parts: str) -> str:
        """Public form of `_k` (the operator stores submitted specs under `specs/...`)."""
        return self._k(*parts)

    def spec_key(self, namespace: str, experiment: str, digest: str) -> str:
        """Where the operator keeps the spec snapshot its RayJobs read (immutable, by digest)."""
        return self._k("specs", namespace, experiment, f"{digest}.json")

    def artifact_prefix(self, stage: str, key: str) -> str:
        return self._k("artifacts", check_segment(stage, "stage"), check_segment(key, "key"))

    def manifest_key(self, stage: str, key: str) -> str:
        return self.artifact_prefix(stage, key) + "/manifest.json"

    def uri(self, stage: str, key: str) -> str:
        return self.backend.uri(self.artifact_prefix(stage, key))

    # -- artifacts ------------------------------------------------------------------------------

    def manifest(self, stage: str, key: str) -> Manifest | None:
        """The published manifest at (stage, key), checked; None when there is none.

        IntegrityError (naming the file) when it is truncated, edited, belongs to another
        key, or points at objects outside its own artifact folder.
        """
        manifest_key = self.manifest_key(stage, key)
        raw = self.backend.get_bytes(manifest_key)
        if raw is None:
            return None
        return self._parse_manifest(raw, manifest_key, stage, key)

    def _parse_manifest(
        self, raw: bytes, manifest_key: str, stage: str | None = None, key: str | None = None
    ) -> Manifest:
        where = self.backend.uri(manifest_key)
        try:
            manifest = Manifest.from_json(raw)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            reason = str(error) if isinstance(error, ValueError) else type(error).__name__
            if isinstance(error, json.JSONDecodeError):
                reason = f"not complete JSON: {error.msg} at byte {error.pos} of {len(raw)}"
            raise IntegrityError(f"unreadable manifest {where} ({reason[:200]})") from None
        try:
            folder = self.artifact_prefix(manifest.stage, manifest.key) + "/objects/"
        except StoreError as error:
            raise IntegrityError(f"manifest {where} names no valid artifact ({error})") from None
        if (stage, key) != (None, None) and (manifest.stage, manifest.key) != (stage, key):
            raise IntegrityError(f"manifest {where} describes {manifest.stage}/{manifest.key}")
        strays = [o.key for o in manifest.objects if not o.key.startswith(folder) or ".." in o.key]
        if strays:
            raise IntegrityError(f"manifest {where} points outside its artifact: {strays[0]}")
        return manifest

    def publish(
        self,
        stage: str,
        key: str,
        local_dir: Path,
        *,
        code_version: str,
        config: dict[str, Any],
        inputs: list[InputRef],
        started_at: str,
        summary: dict[str, Any] | None = None,
        duration_s: float = 0.0,
        replace: bool = False,
    ) -> Manifest:
        """Upload every file of `local_dir`, then the manifest. Returns the manifest that won.

        A failure before the manifest lands leaves no manifest: the artifact does not exist and
        the next run publishes it again (the half-written attempt folder is removed when the
        store is reachable, and is never referenced otherwise).

        `replace=True` (a forced recomputation) overwrites an existing manifest instead of
        adopting it; the replaced attempt's objects stay for readers that still hold it.
        """
        attempt = uuid.uuid4().hex[:12]
        attempt_prefix = self.artifact_prefix(stage, key) + f"/objects/{attempt}"
        try:
            objects = self._upload_objects(local_dir, attempt_prefix)
        except BaseException:
            self._forget_attempt(attempt_prefix)
            raise
        manifest = Manifest(
            stage=stage,
            key=key,
            code_version=code_version,
            config=config,
            inputs=inputs,
            objects=objects,
            started_at=started_at,
            ended_at=now_iso(),
            duration_s=duration_s,
            summary=summary or {},
            packages=package_versions(),
            host=socket.gethostname(),
            attempt=attempt,
            uri=self.uri(stage, key),
        )
        manifest_key = self.manifest_key(stage, key)
        if replace:
            self.backend.put_bytes(manifest_key, manifest.to_json().encode())
            return manifest
        created = self.backend.put_if_absent(manifest_key, manifest.to_json().encode())
        if created:
            return manifest
        # Someone published the same content address first: theirs is the one result. (A retried
        # PUT whose first try landed also reads as "exists": then the stored manifest is ours.)
        try:
            winner = self.manifest(stage, key)
        except IntegrityError as error:
            # What is there is no artifact (truncated, edited): ours replaces it.
            log.warning("%s; replacing it", error)
            self.backend.put_bytes(manifest_key, manifest.to_json().encode())
            return manifest
        if winner is None:
            raise StoreError(f"manifest vanished during publish: {manifest.uri}")
        if winner.attempt != attempt and created is False:
            # Our manifest was never visible, so nobody can reference our files. (None: it was
            # visible before a racing overwrite; its files stay, unreferenced but safe.)
            self._forget_attempt(attempt_prefix)
        return winner

    def _upload_objects(self, local_dir: Path, attempt_prefix: str) -> list[ObjectEntry]:
        objects = []
        for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
            relative = path.relative_to(local_dir).as_posix()
            object_key = f"{attempt_prefix}/{relative}"
            digest = sha256_file(path)
            self.backend.put_file(object_key, path)
            objects.append(ObjectEntry(relative, digest, path.stat().st_size, object_key))
        return objects

    def _forget_attempt(self, attempt_prefix: str) -> None:
        """Best effort: an unreferenced attempt is garbage, not a result."""
        try:
            self.backend.delete_prefix(attempt_prefix + "/")
        except Exception:
            log.warning("could not remove unfinished upload %s", attempt_prefix)

    def fetch(self, manifest: Manifest, dest: Path, paths: list[str] | None = None) -> Path:
        """Download (all or some) objects of an artifact into `dest`, verifying sha256."""
        for entry in manifest.objects:
            if paths is not None and entry.path not in paths:
                continue
            target = dest / entry.path
            fresh = target.is_file() and target.stat().st_size == entry.size
            if fresh and sha256_file(target) == entry.sha256:
                continue  # already materialised by an earlier fetch
            self.backend.get_file(entry.key, target, entry.sha256)
        return dest

    def read_object(self, manifest: Manifest, path: str) -> bytes:
        entry = manifest.object(path)
        data = self.backend.get_bytes(entry.key)
        if data is None:
            raise StoreError(f"object missing: {self.backend.uri(entry.key)}")
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise IntegrityError(f"digest mismatch for {self.backend.uri(entry.key)}")
        return data

    def verify(self, manifest: Manifest, *, deep: bool = False) -> None:
        """Raise IntegrityError naming every object that is missing, has the wrong size, or
        (`deep`: read and hashed) the wrong sha256. The cheap form costs one stat per object."""
        problems = self.problems(manifest, deep=deep)
        if problems:
            more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            raise IntegrityError(
                f"artifact {manifest.stage} {manifest.uri} is damaged: "
                + "; ".join(problems[:3])
                + more
            )

    def problems(self, manifest: Manifest, *, deep: bool = False) -> list[str]:
        """What is wrong with the stored objects of `manifest` (empty: nothing)."""
        from lima.store.verify import object_problems

        return object_problems(self.backend, manifest, deep=deep)

    def artifacts(self, stage: str | None = None) -> Iterator[Manifest]:
        """Every readable manifest (an unreadable one is logged with its file and skipped)."""
        for object_key in self.manifest_keys(stage):
            raw = self.backend.get_bytes(object_key)
            if raw is None:
                continue
            try:
                yield self._parse_manifest(raw, object_key)
            except IntegrityError as error:
                log.warning("%s", error)

    def manifest_keys(self, stage: str | None = None) -> Iterator[str]:
        root = self._k("artifacts", stage) if stage else self._k("artifacts")
        for object_key in self.backend.list(root + "/"):
            if object_key.endswith("/manifest.json"):
                yield object_key

    # -- leases ------------------------------------------------------------------------------------

    def lease(self, stage: str, key: str, **options: Any) -> Any:
        """A context manager holding the one lease of (stage, key): see `lima.store.lease`."""
        from lima.store.lease import StageLease

        name = self._k("leases", check_segment(stage, "stage"), check_segment(key, "key"))
        return StageLease(self.backend, name, **options)

    # -- small cached values ----------------------------------------------------------------------

    def cache_get(self, namespace: str, material: Any) -> Any | None:
        """The cached value, or None when absent or unreadable (a truncated entry is a miss,
        logged with its file, and is rewritten by the next `cache_put`)."""
        cache_key = self._cache_key(namespace, material)
        raw = self.backend.get_bytes(cache_key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as error:
            log.warning(
                "ignoring unreadable cache entry %s (%s)",
                self.backend.uri(cache_key),
                type(error).__name__,
            )
            return None

    def cache_put(self, namespace: str, material: Any, value: Any) -> None:
        self.backend.put_bytes(self._cache_key(namespace, material), canonical_json(value).encode())

    def _cache_key(self, namespace: str, material: Any) -> str:
        return self._k("cache", namespace, sha256_text(canonical_json(material)) + ".json")

    # -- run records ------------------------------------------------------------------------------

    def record_run(self, experiment: str, run_id: str, record: dict[str, Any]) -> None:
        check_segment(experiment, "experiment name")
        self.backend.put_bytes(
            self._k("runs", experiment, check_segment(run_id, "run id") + ".json"),
            json.dumps(record, indent=2, sort_keys=True, default=str).encode(),
        )

    def runs(self, experiment: str | None = None) -> list[dict[str, Any]]:
        """Run records, oldest first. One that is truncated or not a record is skipped with a
        warning naming its file: one bad record must not hide every other run."""
        if experiment is not None:
            check_segment(experiment, "experiment name")
        root = self._k("runs", experiment) if experiment else self._k("runs")
        records = []
        for object_key in self.backend.list(root + "/"):
            raw = self.backend.get_bytes(object_key)
            record = None if raw is None else self._parse_record(raw, object_key)
            if record is not None:
                records.append(record)
        return sorted(records, key=lambda r: str(r.get("started_at", "")))

    def _parse_record(self, raw: bytes, object_key: str) -> dict[str, Any] | None:
        try:
            record = json.loads(raw)
            _check_record_shape(record)
            return record
        except (ValueError, UnicodeDecodeError) as error:
            reason = error.msg if isinstance(error, json.JSONDecodeError) else str(error)
            log.warning(
                "skipping unreadable run record %s (%s)", self.backend.uri(object_key), reason
            )
            return None


_RECORD_TEXT = ("run_id", "experiment", "started_at", "ended_at")
_STAGE_TEXT = ("stage", "key", "status", "uri", "digest", "message")


def _check_record_shape(record: Any) -> None:
    """ValueError (with the field) unless `record` has the shape the runner writes: every
    reader (`status`, `lineage`, `report`, `verify`, `diff`, `plan`) may then trust its types."""
    if not isinstance(record, dict):
        raise ValueError("not a run record (not an object)")
    for name in _RECORD_TEXT:
        if name in record and not isinstance(record[name], str):
            raise ValueError(f"not a run record ({name} is not text)")
    if record.get("single_stage") is not None and not isinstance(record["single_stage"], str):
        raise ValueError("not a run record (single_stage is not text)")
    stages = record.get("stages", [])
    if not isinstance(stages, list):
        raise ValueError("not a run record (stages is not a list)")
    for index, entry in enumerate(stages):
        where = f"stages[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"not a run record ({where} is not an object)")
        for name in _STAGE_TEXT:
            if name in entry and not isinstance(entry[name], str):
                raise ValueError(f"not a run record ({where}.{name} is not text)")
        duration = entry.get("duration_s", 0.0)
        if duration is not None and (
            isinstance(duration, bool) or not isinstance(duration, int | float)
        ):
            raise ValueError(f"not a run record ({where}.duration_s is not a number)")
        if entry.get("summary") is not None and not isinstance(entry["summary"], dict):
            raise ValueError(f"not a run record ({where}.summary is not an object)")
