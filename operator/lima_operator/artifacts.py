"""What the operator reads of the stage graph and the artifact store.

The plan itself is `lima.dag.plan`, the same walk the local runner uses, so a stage that
`lima run` already produced on a laptop pushing to the same bucket is a cache hit here too. This
module adds what only the operator needs: a memo of immutable store lookups shared across
reconciles (and shared by concurrent reconciles while in flight), the spec a RayJob runs (carried
in the RayJob itself, or a snapshot in the store when too large), and the printer-column
headline from the stages' typed results.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from lima.dag import PlannedStage
from lima.results import JudgeResult, SelectResult
from lima.spec import Experiment
from lima.store import ArtifactStore, Manifest


class CachedStore:
    """An artifact store plus what never changes once seen in it, shared across reconciles.

    Manifests are content-addressed and immutable once published, so a found one is kept;
    a missing one is asked again next time (its RayJob may have published it since). Spec
    snapshots are immutable too. Every Experiment reconcile would otherwise re-read all of them.
    """

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store
        self._manifests: dict[tuple[str, str], Manifest] = {}
        self._specs: set[str] = set()
        self._asking: dict[tuple[str, str], Future] = {}
        self._lock = threading.Lock()

    def manifest(self, stage: str, key: str) -> Manifest | None:
        """The manifest at (stage, key), or None. Called from the store threads: while one
        lookup of (stage, key) is in flight, the others asking for it wait for its answer
        instead of sending the same GET (a burst of Experiments sharing a stage, e.g. the
        curate stage of identical specs or of a sweep's variants, costs one request). A
        manifest published while that GET was on its way is seen by the next reconcile, as it
        would be had it been published just after an own GET."""
        found = self._manifests.get((stage, key))
        if found is not None:
            return found
        with self._lock:
            asking = self._asking.get((stage, key))
            first = asking is None
            if first:
                asking = self._asking[(stage, key)] = Future()
        if not first:
            return asking.result()
        try:
            found = self.store.manifest(stage, key)
        except BaseException as error:
            with self._lock:
                del self._asking[(stage, key)]
            asking.set_exception(error)
            raise
        with self._lock:
            if found is not None:
                self._manifests[(stage, key)] = found
            del self._asking[(stage, key)]
        asking.set_result(found)
        return found

    def ensure_object(self, key: str, data: Callable[[], bytes]) -> str:
        """Write `key` once (immutable content); return its URI."""
        if key not in self._specs:
            # One PUT, no look-up first: the content is fixed by the key (a digest), so writing
            # the same bytes again is harmless, and a new Experiment costs one S3 call less.
            self.store.backend.put_bytes(key, data())
            self._specs.add(key)
        return self.store.backend.uri(key)


def document(experiment: Experiment) -> dict[str, Any]:
    """The Experiment as a plain document (what `lima run` would read from a file)."""
    return experiment.model_dump(mode="json", exclude={"metadata": {"namespace"}})


def spec_digest(experiment: Experiment) -> str:
    return _dumped(experiment)[0]


_DUMPED: dict[int, tuple[Experiment, str, str]] = {}
_DUMPED_MAX = 1024


def _dumped(experiment: Experiment) -> tuple[str, str]:
    """(digest of the spec, the document as compact JSON), from one dump of the model.

    Memoised per object: reconcile.parse hands out the same (never mutated) Experiment for the
    same document, so each reconcile does not dump it again; the entry keeps the object alive,
    so its id cannot be reused by another while it is cached.
    """
    found = _DUMPED.get(id(experiment))
    if found is None or found[0] is not experiment:
        dumped = document(experiment)
        spec = json.dumps(dumped.pop("spec"), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(spec.encode()).hexdigest()[:16]
        # The document carries the spec as the very bytes digested: sorted keys, compact.
        head = json.dumps(dumped, separators=(",", ":"))
        text = f'{head[:-1]}{"," if dumped else ""}"spec":{spec}}}'
        found = (experiment, digest, text)
        if len(_DUMPED) >= _DUMPED_MAX:
            _DUMPED.pop(next(iter(_DUMPED)))  # oldest first
        _DUMPED[id(experiment)] = found
    return found[1], found[2]


@dataclass(frozen=True)
class SpecRef:
    """The spec a stage's RayJob runs: `document` (JSON, carried in the RayJob) or, for a spec
    over `lima.k8s.rayjob.MAX_INLINE_SPEC`, the store snapshot at `uri`; `digest` names it.

    Either way a job started for one version of the spec never sees a later edit, and Ray pods
    need no Kubernetes API access at all.
    """

    digest: str
    document: str | None = None
    uri: str | None = None


def spec_json(experiment: Experiment) -> str:
    """The document a stage reads, as compact JSON (what `lima stage --experiment` loads)."""
    return _dumped(experiment)[1]


def publish_spec(experiment: Experiment, namespace: str, store: CachedStore) -> str:
    """Write the spec snapshot (immutable, content-addressed) of a spec too large to carry in
    its RayJobs; return its URI."""
    key = store.store.spec_key(namespace, experiment.metadata.name, spec_digest(experiment))
    # No `indent`: it switches json to its pure-Python encoder, 5 ms a spec (a third of the
    # operator's CPU per new Experiment); the snapshot is for `lima stage`, not for reading.
    return store.ensure_object(key, lambda: json.dumps(document(experiment)).encode())


def headline(planned: Iterable[PlannedStage]) -> dict[str, Any]:
    """`bestEpoch` and `winRate` (the printer columns), the selection fallback and whether the
    judge is the proxy, from the select and judge stages' typed results."""
    found: dict[str, Any] = {}
    for step in planned:
        result = step.result()
        if isinstance(result, SelectResult):
            found["bestEpoch"] = result.selected_epoch
            if result.fallback is not None:
                found["selectionFallback"] = result.fallback
            found["judgeProxy"] = result.proxy
        elif isinstance(result, JudgeResult):
            found["judgeProxy"] = result.proxy
            if result.headline is not None:
                found["winRate"] = result.headline.column()
    return found
