"""The local runner: follow the plan (lima.dag.plan), skip cache hits, run the rest.

The same `run_single_stage` is what a RayJob runs on a cluster (`lima stage NAME FILE`), so a
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

from lima import dag
from lima.dag import PlannedStage, Stage
from lima.errors import IntegrityError, LimaError, StageError, StoreError
from lima.settings import Settings
from lima.spec import Experiment
from lima.stage_logs import stage_log
from lima.stages.base import ProgressSink, StageContext
from lima.store import ArtifactStore, InputRef, Manifest, now_iso, open_store
from lima.store.verify import SkipUnreadable

log = logging.getLogger("lima.runner")


@dataclass
class StageRun:
    """What happened to one stage in one run (kept in the run record)."""

    stage: str
    key: str
    status: str  # "cached" | "done" | "failed" | "skipped"
    uri: str = ""
    digest: str = ""
    duration_s: float = 0.0
    message: str = ""
    summary: dict[str, Any] | None = None
    """The stage's typed result (lima.results) as JSON; `dag.get(stage).read_result` reads it."""

    @property
    def cache_hit(self) -> bool:
        return self.status == "cached"


class Events:
    """Callbacks the runner makes; the CLI renders them with rich, tests record them."""

    def stage_started(self, stage: Stage, key: str) -> ProgressSink:
        return lambda **_: None

    def stage_finished(self, result: StageRun) -> None:
        return None

    def cancelled(self) -> bool:
        """True once the user stopped the run (Ctrl-C): start nothing more, record nothing.

        The interrupted run is recorded by whoever caught the interrupt; a record written here
        afterwards would show the stage Ray's stop broke as "failed" and hide the interruption.
        """
        return False


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
    run_id: str = "",
) -> Manifest:
    """Run one stage into a fresh folder and publish it (manifest last).

    `key` defaults to the stage's key for these inputs; `replace` (a forced run) makes the new
    output the artifact even if one exists at `key`.
    """
    from lima.runtime import ensure_ray

    key = key or stage.key(experiment, inputs)
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
            run_id=run_id,
        )
        summary = stage.check_result(stage.load_run()(ctx))
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
    verify: bool = False
    """Re-hash every object of a cache hit (`lima run --verify`); by default a cache hit is
    checked cheaply: manifest intact, every object present with its size."""


class _Walk:
    """One run's progress through the plan: which stages are still to be forced."""

    def __init__(
        self,
        experiment: Experiment,
        store: ArtifactStore,
        stages: Sequence[Stage],
        options: RunOptions,
        run_id: str = "",
    ) -> None:
        self.experiment, self.store, self.stages, self.options = experiment, store, stages, options
        self.run_id = run_id
        names = {s.name for s in stages}
        unknown = set(options.force_stages) - names
        if unknown:
            raise LimaError(f"--force-stage names unknown stage(s): {', '.join(sorted(unknown))}")
        self.to_force = names if options.force else set(options.force_stages)
        if options.only is not None:
            self.to_force &= set(options.only)

    def plan(self) -> list[PlannedStage]:
        """The plan as it stands now: re-read after each stage (its artifact changes the keys
        of the stages after it); forced stages count as uncached until they have run."""
        # An unreadable manifest counts as no artifact: the stage runs again and replaces it.
        readable = SkipUnreadable(self.store)
        return dag.plan(
            self.experiment, readable, self.stages, ignore_cache=lambda s: s.name in self.to_force
        )

    def inputs(self, planned: list[PlannedStage], stage: Stage) -> dict[str, Manifest]:
        by_name = {p.name: p.manifest for p in planned}
        return {name: by_name[name] for name in stage.inputs if by_name[name] is not None}


def run_experiment(
    experiment: Experiment,
    settings: Settings,
    *,
    stages: Sequence[Stage] | None = None,
    options: RunOptions | None = None,
    events: Events | None = None,
    store: ArtifactStore | None = None,
) -> list[StageRun]:
    """Run every stage in graph order; a failed stage stops the run and later stages are skipped."""
    options = options or RunOptions()
    events = events or Events()
    store = store or open_store(settings, experiment.spec.storage)
    ordered = dag.topological(stages if stages is not None else dag.GRAPH)
    run_id = _new_run_id()
    walk = _Walk(experiment, store, ordered, options, run_id)
    record: dict[str, Any] = {
        "run_id": run_id,
        "experiment": experiment.metadata.name,
        "started_at": now_iso(),
        "stages": [],
    }
    results: list[StageRun] = []
    failed = False
    for position, stage in enumerate(ordered):
        if events.cancelled():
            return results
        if failed:
            result = StageRun(stage.name, "", "skipped", message="an earlier stage failed")
        else:
            result = _run_planned(walk, position, settings, events)
            failed = result.status == "failed"
        results.append(result)
        events.stage_finished(result)
        record["stages"].append(asdict(result))
    if events.cancelled():
        return results
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


def _run_planned(walk: _Walk, position: int, settings: Settings, events: Events) -> StageRun:
    """Serve stage `position` of the plan from the cache, or run it."""
    started = time.perf_counter()
    stage, key = walk.stages[position], ""

    def elapsed() -> float:
        return round(time.perf_counter() - started, 3)

    try:
        planned = walk.plan()
        step = planned[position]
        key = step.key or ""
        damaged = step.manifest is not None and _intact(walk, stage, step.manifest) is None
        if step.manifest is not None and not damaged:
            cached = step.manifest
            return StageRun(
                stage.name, key, "cached", cached.uri, cached.digest, elapsed(), "", cached.summary
            )
        if step.key is None:
            missing = [p.name for p in planned if p.name in stage.inputs and p.manifest is None]
            raise LimaError(f"stage {stage.name!r} needs {', '.join(missing)} to have run first")
        if walk.options.only is not None and stage.name not in walk.options.only:
            raise LimaError(f"stage {stage.name!r} is not cached; run it first")
        progress = events.stage_started(stage, key)
        forced = stage.name in walk.to_force
        # One computation per key: a concurrent run of the same key holds this lease; we wait,
        # then serve what it published (lima.store.lease).
        with walk.store.lease(stage.name, key):
            adopted = None if forced else _published_meanwhile(walk, stage, key)
            if adopted is not None:
                return StageRun(
                    stage.name, key, "cached", adopted.uri, adopted.digest, elapsed(), "",
                    adopted.summary,
                )  # fmt: skip
            # The stage's log goes to the store when it ends (lima.stage_logs): `lima logs`
            # reads it after the process, or on a cluster the RayJob's Ray cluster, is gone.
            with stage_log(walk.store, walk.experiment.metadata.name, stage.name):
                manifest = execute(
                    walk.experiment,
                    stage,
                    walk.inputs(planned, stage),
                    walk.store,
                    settings,
                    progress,
                    key,
                    replace=forced or damaged,
                    run_id=walk.run_id,
                )
        walk.to_force.discard(stage.name)
        return StageRun(
            stage.name, key, "done", manifest.uri, manifest.digest, elapsed(), "", manifest.summary
        )
    except Exception as error:
        log.debug("stage %s failed", stage.name, exc_info=True)
        message = str(error) if isinstance(error, LimaError) else f"{type(error).__name__}: {error}"
        return StageRun(stage.name, key, "failed", duration_s=elapsed(), message=message)


def _intact(walk: _Walk, stage: Stage, manifest: Manifest) -> Manifest | None:
    """`manifest` if its objects check out (sizes; sha256 too with `--verify`), else None: a
    damaged artifact is computed again and replaces it, never served."""
    try:
        walk.store.verify(manifest, deep=walk.options.verify)
    except IntegrityError as error:
        log.warning("%s: %s; computing it again", stage.name, error)
        return None
    return manifest


def _published_meanwhile(walk: _Walk, stage: Stage, key: str) -> Manifest | None:
    """The intact artifact another run published at `key` while we waited for its lease."""
    manifest = SkipUnreadable(walk.store).manifest(stage.name, key)
    return None if manifest is None else _intact(walk, stage, manifest)


def run_single_stage(
    experiment: Experiment,
    settings: Settings,
    name: str,
    *,
    force: bool = False,
    stages: Sequence[Stage] | None = None,
    progress: ProgressSink | None = None,
) -> StageRun:
    """Run one stage whose inputs are already in the store (what a RayJob does)."""
    ordered = dag.topological(stages if stages is not None else dag.GRAPH)
    target = dag.get(name, ordered)
    needed = dag.ancestors(name, ordered) | {name}
    ordered = [s for s in ordered if s.name in needed]
    store = open_store(settings, experiment.spec.storage)
    run_id, started_at = _new_run_id(), now_iso()
    options = RunOptions(force_stages=[name] if force else [])
    walk = _Walk(experiment, store, ordered, options, run_id)
    for step in walk.plan():
        if step.name != name and step.manifest is None:
            raise LimaError(f"stage {name!r} needs {step.name!r}, which has no artifact yet")
    events = _SingleEvents(progress)
    result = _run_planned(walk, ordered.index(target), settings, events)
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
