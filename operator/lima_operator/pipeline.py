"""DAG order and cache hits: which stages are done, and which one runs next.

Keys are computed exactly as the local runner does (`lima.runner.stage_key`), so a stage that
`lima run` already produced on a laptop pushing to the same bucket is a cache hit here too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lima.runner import stage_key
from lima.spec import Experiment
from lima.stages import Stage, pipeline
from lima.store import ArtifactStore, Manifest


def load_stages() -> list[Stage]:
    """Every registered stage in DAG order (tests replace this with small stages)."""
    return pipeline()


@dataclass
class StageView:
    name: str
    key: str | None  # None while an input is still missing
    manifest: Manifest | None


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

    def manifest(self, stage: str, key: str) -> Manifest | None:
        found = self._manifests.get((stage, key))
        if found is None:
            found = self.store.manifest(stage, key)
            if found is not None:
                self._manifests[(stage, key)] = found
        return found

    def ensure_object(self, key: str, data: Callable[[], bytes]) -> str:
        """Write `key` once (immutable content); return its URI."""
        if key not in self._specs:
            if not self.store.backend.exists(key):
                self.store.backend.put_bytes(key, data())
            self._specs.add(key)
        return self.store.backend.uri(key)


def plan(experiment: Experiment, store: CachedStore, stages: list[Stage]) -> list[StageView]:
    """Every stage with its key (when computable) and its artifact manifest (when published)."""
    done: dict[str, Manifest] = {}
    views: list[StageView] = []
    for stage in stages:
        if any(name not in done for name in stage.inputs):
            views.append(StageView(stage.name, None, None))
            continue
        key = stage_key(experiment, stage, {name: done[name] for name in stage.inputs})
        manifest = store.manifest(stage.name, key)
        if manifest is not None:
            done[stage.name] = manifest
        views.append(StageView(stage.name, key, manifest))
    return views


def document(experiment: Experiment) -> dict[str, Any]:
    """The Experiment as a plain document (what `lima run` would read from a file)."""
    return experiment.model_dump(mode="json", exclude={"metadata": {"namespace"}})


def spec_digest(experiment: Experiment) -> str:
    text = json.dumps(document(experiment)["spec"], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def publish_spec(experiment: Experiment, namespace: str, store: CachedStore) -> str:
    """Write the spec snapshot RayJobs read (immutable, content-addressed); return its URI.

    RayJobs read this snapshot rather than the live object: a job started for one version of
    the spec never sees a later edit, and Ray pods need no Kubernetes API access at all.
    """
    digest = spec_digest(experiment)
    key = store.store._k("specs", namespace, experiment.metadata.name, f"{digest}.json")
    return store.ensure_object(key, lambda: json.dumps(document(experiment), indent=1).encode())


def headline(manifests: list[Manifest]) -> dict[str, Any]:
    """bestEpoch / winRate for the printer columns, from the stages' summaries when present."""
    found: dict[str, Any] = {}
    for manifest in manifests:
        summary = manifest.summary or {}
        if isinstance(summary.get("best_epoch"), int):
            found["bestEpoch"] = summary["best_epoch"]
        if summary.get("win_rate") is not None:
            found["winRate"] = str(summary["win_rate"])
    return found
