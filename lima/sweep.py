"""Running a sweep (`spec.sweep`): each variant is an Experiment of its own, run by the runner.

A variant's Experiment is named `<experiment>-<variant>`, its spec is the sweep's spec patched by
the variant, and it shares the store: stages whose configuration and inputs are the same in two
variants have the same content key, so the second variant gets a cache hit (a sweep over training
size curates once). After the variants, `compare` judges every variant's answers against the
baseline variant's with the shared judge and writes the comparison report (lima.report.compare).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lima import dag
from lima.dag import Stage
from lima.errors import LimaError
from lima.runner import Events, RunOptions, StageRun, run_experiment
from lima.settings import Settings
from lima.spec import Experiment, Variant
from lima.spec.sweep import variant_document
from lima.store import ArtifactStore, Manifest, open_store

if TYPE_CHECKING:
    from lima.store.plan import PlanLine

log = logging.getLogger("lima.sweep")


def variant_experiment(
    experiment: Experiment, variant: Variant, *, name: str | None = None
) -> Experiment:
    """The Experiment one variant runs (validated; `spec.sweep` is gone from it).

    Locally it is named `<sweep>-<variant>` (its runs show apart in `lima status`); the operator
    keeps the sweep's `name`, so the variant's RayJobs belong to the sweep's object.
    """
    if experiment.spec.sweep is None:
        raise LimaError(f"{experiment.metadata.name} has no spec.sweep")
    return Experiment.model_validate(
        {
            "apiVersion": experiment.apiVersion,
            "kind": experiment.kind,
            "metadata": {"name": name or variant_name(experiment, variant)},
            "spec": variant_document(experiment.spec, variant),
        }
    )


def variant_name(experiment: Experiment, variant: Variant) -> str:
    return f"{experiment.metadata.name}-{variant.name}"


def variants(experiment: Experiment) -> list[tuple[Variant, Experiment]]:
    sweep = experiment.spec.sweep
    if sweep is None:
        raise LimaError(f"{experiment.metadata.name} has no spec.sweep")
    return [(variant, variant_experiment(experiment, variant)) for variant in sweep.variants]


@dataclass
class VariantRun:
    variant: Variant
    experiment: Experiment
    stages: list[StageRun] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.stages) and all(s.status in ("done", "cached") for s in self.stages)

    def manifest(self, store: ArtifactStore, stage: str) -> Manifest | None:
        run = next((s for s in self.stages if s.stage == stage), None)
        return store.manifest(stage, run.key) if run is not None and run.key else None


@dataclass
class SweepRun:
    experiment: Experiment
    variants: list[VariantRun]
    comparison: Manifest | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.variants) and self.comparison is not None

    def summary(self) -> dict[str, Any]:
        """One row per variant: what ran, what was a cache hit, what failed."""
        rows = []
        for run in self.variants:
            statuses = [s.status for s in run.stages]
            rows.append(
                {
                    "variant": run.variant.name,
                    "experiment": run.experiment.metadata.name,
                    "ran": statuses.count("done"),
                    "cached": statuses.count("cached"),
                    "failed": [s.stage for s in run.stages if s.status == "failed"],
                }
            )
        return {
            "sweep": self.experiment.metadata.name,
            "variants": rows,
            "comparison": self.comparison.uri if self.comparison else None,
            "message": self.message,
        }


def run_sweep(
    experiment: Experiment,
    settings: Settings,
    *,
    options: RunOptions | None = None,
    events: Events | None = None,
    store: ArtifactStore | None = None,
    stages: Sequence[Stage] | None = None,
) -> SweepRun:
    """Run every variant (one after another), then the comparison of the finished ones."""
    from lima.report.compare import compare

    events = events or Events()
    store = store or open_store(settings, experiment.spec.storage)
    planned = variants(experiment)
    result = SweepRun(experiment, [])
    for index, (variant, child) in enumerate(planned):
        if events.cancelled():
            result.message = "interrupted"
            return result
        log.info("variant %s (%d/%d)", variant.name, index + 1, len(planned))
        runs = run_experiment(
            child, settings, stages=stages, options=options, events=events, store=store
        )
        result.variants.append(VariantRun(variant, child, runs))
    if events.cancelled():
        result.message = "interrupted"
        return result
    failed = [v.variant.name for v in result.variants if not v.ok]
    if failed:
        result.message = f"no comparison: variant(s) {', '.join(failed)} did not finish"
        return result
    result.comparison = compare(experiment, result.variants, settings, store)
    _record(store, result)
    return result


def _record(store: ArtifactStore, result: SweepRun) -> None:
    """The sweep's own run record: `lima report SWEEP` finds the comparison through it."""
    comparison = result.comparison
    assert comparison is not None
    run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
    record = {
        "run_id": run_id,
        "experiment": result.experiment.metadata.name,
        "sweep": result.summary(),
        "stages": [
            {"stage": "compare", "key": comparison.key, "status": "done", "uri": comparison.uri}
        ],
    }
    store.record_run(result.experiment.metadata.name, run_id, record)


def summary_lines(result: SweepRun) -> list[str]:
    """Plain lines for the end of `lima run` on a sweep: one per variant, then the report."""
    lines = [f"sweep {result.experiment.metadata.name}: {len(result.variants)} variants"]
    for row in result.summary()["variants"]:
        failed = f", FAILED: {', '.join(row['failed'])}" if row["failed"] else ""
        lines.append(f"  {row['variant']:<16} {row['ran']} ran, {row['cached']} cached{failed}")
    if result.comparison is not None:
        lines.append(f"comparison: `lima report {result.experiment.metadata.name}`")
    elif result.message:
        lines.append(result.message)
    return lines


def plan_lines(
    experiment: Experiment,
    store: ArtifactStore,
    *,
    force_stages: Sequence[str] = (),
    force_all: bool = False,
    stages: Sequence[Stage] | None = None,
) -> list[PlanLine]:
    """`lima plan` on a sweep: every variant's stages (named by variant), then the comparison.

    A stage that an earlier variant would run with the same key is `shared`: the later variant
    gets it as a cache hit once the earlier one made it (a sweep over training size curates
    once)."""
    from lima.report.compare import INPUTS, STAGE, compare_key
    from lima.store.plan import PlanLine
    from lima.store.plan import plan_lines as stage_lines

    lines: list[PlanLine] = []
    running: dict[str, str] = {}  # key -> the first variant that runs it
    inputs: dict[tuple[str, str], Manifest] = {}
    for variant, child in variants(experiment):
        planned = stage_lines(
            child, store, force_stages=force_stages, force_all=force_all, stages=stages
        )
        for line in planned:
            line.variant = variant.name
            first = running.get(line.key or "")
            if line.action == "run" and first is not None:
                line.action, line.reason = "shared", f"run by variant {first} first"
            elif line.action == "run" and line.key:
                running[line.key] = variant.name
        lines += planned
        cached = {line.stage: line.key for line in planned if line.action == "cached"}
        for stage in INPUTS:
            manifest = store.manifest(stage, cached[stage]) if cached.get(stage) else None
            if manifest is not None:
                inputs[(variant.name, stage)] = manifest
    assert experiment.spec.sweep is not None
    if len(inputs) < len(INPUTS) * len(experiment.spec.sweep.variants):
        waiting = f"needs every variant's {', '.join(INPUTS)} first"
        lines.append(PlanLine(STAGE, "run after inputs", None, waiting))
        return lines
    key, _ = compare_key(experiment, inputs)
    manifest = store.manifest(STAGE, key)  # `--force` recomputes stages, not a comparison
    if manifest is None:
        lines.append(PlanLine(STAGE, "run", key, "the variants' artifacts were not compared yet"))
    else:
        lines.append(PlanLine(STAGE, "cached", key, f"{len(manifest.objects)} objects"))
    return lines


def compare_finished(experiment: Experiment, settings: Settings) -> Manifest:
    """The comparison of a sweep whose variants all have their artifacts (what the operator's
    last RayJob of a sweep runs: `lima stage compare --experiment URI`)."""
    from lima.report.compare import compare

    store = open_store(settings, experiment.spec.storage)
    runs = []
    for variant, child in variants(experiment):
        planned = dag.plan(child, store)
        missing = [p.name for p in planned if p.manifest is None]
        if missing:
            raise LimaError(f"variant {variant.name}: {', '.join(missing)} not done yet")
        stages = [StageRun(p.name, p.key or "", "cached") for p in planned]
        runs.append(VariantRun(variant, child, stages))
    return compare(experiment, runs, settings, store)
