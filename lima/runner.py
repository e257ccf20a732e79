"""The local runner: resolve the DAG, compute content keys, skip cache hits, run the rest.

The same `run_stage` is what a RayJob entrypoint (`jobs/<stage>.py`) calls on a cluster, so a
laptop run and an operator-driven run produce identical artifacts and keys.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lima.errors import LimaError, StageError, StoreError
from lima.settings import Settings
from lima.spec import Experiment
from lima.stages import Stage, StageContext, pipeline, topological
from lima.stages.base import ProgressSink
from lima.store import ArtifactStore, InputRef, Manifest, artifact_key, now_iso, open_store

log = logging.getLogger("lima.runner")


@dataclass
class StageResult:
    stage: str
    key: str
    status: str  # "cached" | "done" | "failed" | "skipped"
    uri: str = ""
    digest: str = ""
    duration_s: float = 0.0
    message: str = ""
    summary: dict[str, Any] | None = None

    @property
    def cache_hit(self) -> bool:
        return self.status == "cached"


class Events:
    """Callbacks the runner makes; the CLI renders them with rich, tests record them."""

    def stage_started(self, stage: Stage, key: str) -> ProgressSink:
        return lambda **_: None

    def stage_finished(self, result: StageResult) -> None:
        return None


def stage_key(experiment: Experiment, stage: Stage, inputs: dict[str, Manifest]) -> str:
    config = stage.config(experiment)
    return artifact_key(stage.name, stage.version, config, {n: m.digest for n, m in inputs.items()})


def resolve_inputs(
    store: ArtifactStore, stage: Stage, done: dict[str, Manifest]
) -> dict[str, Manifest]:
    missing = [name for name in stage.inputs if name not in done]
    if missing:
        raise LimaError(f"stage {stage.name!r} needs {', '.join(missing)} to have run first")
    return {name: done[name] for name in stage.inputs}


def execute(
    experiment: Experiment,
    stage: Stage,
    inputs: dict[str, Manifest],
    store: ArtifactStore,
    settings: Settings,
    progress: ProgressSink,
    key: str | None = None,
    *,
    replace: bool = False,
) -> Manifest:
    """Run one stage into a fresh folder and publish it (manifest last).

    `replace` (a forced run) makes the new output the artifact even if one exists at `key`.
    """
    from lima.runtime import ensure_ray

    key = key or stage_key(experiment, stage, inputs)
    scratch_root = settings.scratch_dir.resolve()
    scratch_root.mkdir(parents=True, exist_ok=True)
    output_dir = Path(tempfile.mkdtemp(prefix=f"{stage.name}-", dir=scratch_root))
    started_at, started = now_iso(), time.perf_counter()
    try:
        ensure_ray(settings)
        ctx = StageContext(
            experiment=experiment,
            settings=settings,
            store=store,
            inputs=inputs,
            output_dir=output_dir,
            scratch_dir=scratch_root,
            key=key,
            stage=stage.name,
            progress=progress,
            forced=replace,
        )
        summary = stage.run(ctx) or {}
        if not any(output_dir.iterdir()):
            raise StageError(f"stage {stage.name!r} produced no output")
        return store.publish(
            stage.name,
            key,
            output_dir,
            code_version=stage.version,
            config=stage.config(experiment),
            inputs=[InputRef(n, m.key, m.digest, m.uri) for n, m in inputs.items()],
            started_at=started_at,
            summary=summary,
            duration_s=round(time.perf_counter() - started, 3),
            replace=replace,
        )
    finally:
        shutil.rmtree(output_dir, ignore_errors=True)


@dataclass
class RunOptions:
    force: bool = False
    force_stages: Sequence[str] = ()
    only: Sequence[str] | None = None
    """Run these stages (and reuse their inputs from the cache); None = all."""


def run_experiment(
    experiment: Experiment,
    settings: Settings,
    *,
    stages: Sequence[Stage] | None = None,
    options: RunOptions | None = None,
    events: Events | None = None,
    store: ArtifactStore | None = None,
) -> list[StageResult]:
    """Run every stage in DAG order; a failed stage stops the run and later stages are skipped."""
    options = options or RunOptions()
    events = events or Events()
    store = store or open_store(settings, experiment.spec.storage)
    ordered = topological(stages) if stages is not None else pipeline()
    unknown = set(options.force_stages) - {s.name for s in ordered}
    if unknown:
        raise LimaError(f"--force-stage names unknown stage(s): {', '.join(sorted(unknown))}")

    run_id = _new_run_id()
    record: dict[str, Any] = {
        "run_id": run_id,
        "experiment": experiment.metadata.name,
        "started_at": now_iso(),
        "stages": [],
    }
    done: dict[str, Manifest] = {}
    results: list[StageResult] = []
    failed = False
    for stage in ordered:
        if failed:
            result = StageResult(stage.name, "", "skipped", message="an earlier stage failed")
        else:
            result = _run_one(experiment, stage, store, settings, options, events, done)
            failed = result.status == "failed"
        results.append(result)
        events.stage_finished(result)
        record["stages"].append(asdict(result))
    record["ended_at"] = now_iso()
    _save_record(store, experiment.metadata.name, run_id, record)
    return results


def _new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def _save_record(
    store: ArtifactStore, experiment: str, run_id: str, record: dict[str, Any]
) -> None:
    """Keep the run's results even when the store itself is what failed (they are returned too)."""
    try:
        store.record_run(experiment, run_id, record)
    except StoreError as error:
        log.warning("run record %s not saved: %s", run_id, error)


def _run_one(
    experiment: Experiment,
    stage: Stage,
    store: ArtifactStore,
    settings: Settings,
    options: RunOptions,
    events: Events,
    done: dict[str, Manifest],
) -> StageResult:
    started = time.perf_counter()
    try:
        inputs = resolve_inputs(store, stage, done)
        key = stage_key(experiment, stage, inputs)
        forced = options.force or stage.name in options.force_stages
        skip = options.only is not None and stage.name not in options.only
        cached = None if forced and not skip else store.manifest(stage.name, key)
        if cached is not None:
            done[stage.name] = cached
            return StageResult(
                stage.name,
                key,
                "cached",
                cached.uri,
                cached.digest,
                round(time.perf_counter() - started, 3),
                summary=cached.summary,
            )
        if skip:
            raise LimaError(f"stage {stage.name!r} is not cached; run it first")
        progress = events.stage_started(stage, key)
        manifest = execute(
            experiment, stage, inputs, store, settings, progress, key, replace=forced
        )
        done[stage.name] = manifest
        return StageResult(
            stage.name,
            key,
            "done",
            manifest.uri,
            manifest.digest,
            round(time.perf_counter() - started, 3),
            summary=manifest.summary,
        )
    except Exception as error:
        log.debug("stage %s failed", stage.name, exc_info=True)
        message = str(error) if isinstance(error, LimaError) else f"{type(error).__name__}: {error}"
        return StageResult(
            stage.name,
            locals().get("key", ""),
            "failed",
            duration_s=round(time.perf_counter() - started, 3),
            message=message,
        )


def run_single_stage(
    experiment: Experiment,
    settings: Settings,
    name: str,
    *,
    force: bool = False,
    stages: Sequence[Stage] | None = None,
    progress: ProgressSink | None = None,
) -> StageResult:
    """Run one stage whose inputs are already in the store (what a RayJob does)."""
    ordered = topological(stages) if stages is not None else pipeline()
    by_name = {s.name: s for s in ordered}
    if name not in by_name:
        raise LimaError(f"unknown stage {name!r} (known: {', '.join(by_name)})")
    store = open_store(settings, experiment.spec.storage)
    done: dict[str, Manifest] = {}
    for stage in ordered:
        if stage.name == name:
            break
        if stage.name not in _ancestors(by_name, name):
            continue
        key = stage_key(experiment, stage, resolve_inputs(store, stage, done))
        manifest = store.manifest(stage.name, key)
        if manifest is None:
            raise LimaError(f"stage {name!r} needs {stage.name!r}, which has no artifact yet")
        done[stage.name] = manifest
    events = _SingleEvents(progress)
    options = RunOptions(force_stages=[name] if force else [])
    run_id, started_at = _new_run_id(), now_iso()
    result = _run_one(experiment, by_name[name], store, settings, options, events, done)
    record = {
        "run_id": run_id,
        "experiment": experiment.metadata.name,
        "started_at": started_at,
        "ended_at": now_iso(),
        "single_stage": name,
        "stages": [asdict(result)],
    }
    _save_record(store, experiment.metadata.name, run_id, record)
    if result.status == "failed":
        raise StageError(f"stage {name} failed: {result.message}")
    return result


class _SingleEvents(Events):
    def __init__(self, progress: ProgressSink | None) -> None:
        self._progress = progress

    def stage_started(self, stage: Stage, key: str) -> ProgressSink:
        return self._progress or super().stage_started(stage, key)


def _ancestors(by_name: dict[str, Stage], name: str) -> set[str]:
    seen: set[str] = set()
    stack = list(by_name[name].inputs)
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(by_name[current].inputs)
    return seen


def planned_keys(experiment: Experiment, store: ArtifactStore) -> dict[str, str | None]:
    """Key of every stage whose inputs are all cached (None once a stage's output is missing)."""
    done: dict[str, Manifest] = {}
    keys: dict[str, str | None] = {}
    for stage in pipeline():
        if any(i not in done for i in stage.inputs):
            keys[stage.name] = None
            continue
        key = stage_key(experiment, stage, {i: done[i] for i in stage.inputs})
        keys[stage.name] = key
        manifest = store.manifest(stage.name, key)
        if manifest is not None:
            done[stage.name] = manifest
    return keys
