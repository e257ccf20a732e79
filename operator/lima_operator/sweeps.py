"""Reconciling an Experiment with `spec.sweep`: every variant's stages, then the comparison.

Each variant is planned as an Experiment of its own (lima.sweep.variant_experiment) that keeps the
sweep's name, so its RayJobs are labelled with, owned by and named after the sweep: a RayJob name
hashes the stage key, so a stage two variants share (curation, in a sweep over training settings)
maps to ONE RayJob, run once and adopted by both. At most `spec.sweep.parallelism` unfinished
variants advance at a time, in the order written. When every variant is done, one last RayJob runs
`lima stage compare` (the comparison report); the sweep succeeds when its artifact exists.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lima.dag import PlannedStage, Stage, plan
from lima.k8s.pools import check_pools
from lima.k8s.rayjob import LABEL_EXPERIMENT, LABEL_STAGE, stage_rayjob_name
from lima.report.compare import INPUTS, STAGE, VERSION, compare_key
from lima.spec import Experiment
from lima.sweep import variant_experiment
from lima_operator.artifacts import CachedStore, spec_digest
from lima_operator.status import DONE_PHASES, FAILED, PENDING, RUNNING, SUCCEEDED, conditions

COMPARE = Stage(STAGE, VERSION, (), lambda experiment: {}, "lima.sweep:compare_finished")
"""The comparison as the operator sees it: a stage-like step with a content key."""


async def reconcile_sweep(
    body: dict[str, Any],
    experiment: Experiment,
    digest: str,
    retry: str,
    store: CachedStore,
    deps: Any,
) -> Any:
    """The sweep's new status: per-variant rows, the compare row, overall phase and progress."""
    from lima_operator.reconcile import (
        Result,
        _advance,
        _follow,
        _invalid,
        in_store,
        spec_for_rayjobs,
    )

    namespace = body["metadata"]["namespace"]
    sweep = experiment.spec.sweep
    previous = body.get("status") or {}
    children = [
        (v, variant_experiment(experiment, v, name=experiment.metadata.name))
        for v in sweep.variants
    ]
    problems = [
        f"variant {variant.name}: {problem}"
        for variant, child in children
        for problem in check_pools(child, deps.pools, [s.name for s in deps.stages])
    ]
    if problems:
        result = _invalid(body, problems, "PoolLimits")
        result.status["specDigest"] = digest
        return result
    # The variants' cache checks are independent: they run at once (a shared stage's manifest
    # is asked for once, CachedStore.manifest).
    found = await asyncio.gather(
        *(
            in_store(deps, child, "the cache check", plan, child, store, deps.stages)
            for _, child in children
        )
    )
    plans = {variant.name: views for (variant, _), views in zip(children, found, strict=True)}
    if previous.get("specDigest") not in (None, digest) or previous.get("retry", "0") != retry:
        await _drop_stale(body, children, plans, retry, deps)
    old_variants = {v["name"]: v for v in previous.get("variants", [])}
    rows: list[dict[str, Any]] = []
    events: list[tuple[str, str, str]] = []
    active = 0
    for variant, child in children:
        views = plans[variant.name]
        done = all(v.manifest is not None for v in views)
        old = old_variants.get(variant.name, {})
        if done or active < sweep.parallelism:
            spec = await spec_for_rayjobs(deps, child, namespace, store, spec_digest(child))
            sub_body = {**body, "status": {**old, "stages": old.get("stages", [])}}
            result = await _advance(sub_body, child, views, spec, digest, retry, store, deps)
            row = _variant_row(variant.name, result.status)
            events += [
                (kind, reason, f"{variant.name}: {text}") for kind, reason, text in result.events
            ]
            active += row["phase"] not in DONE_PHASES
        else:
            row = _waiting_row(variant.name, views)
        rows.append(row)
    compare_row, phase, reason, message = {"name": STAGE, "phase": PENDING}, RUNNING, "", ""
    failed = [r for r in rows if r["phase"] == FAILED]
    if failed:
        phase, reason = FAILED, "VariantFailed"
        message = "; ".join(f"{r['name']}: {r.get('message', 'failed')}" for r in failed)
    elif all(r["phase"] in DONE_PHASES for r in rows):
        compare_row, phase, reason, message, new = await _compare(
            body, experiment, retry, store, previous, deps, _follow, in_store, spec_for_rayjobs
        )
        events += new
    else:
        running = [r["name"] for r in rows if r["phase"] not in (*DONE_PHASES, PENDING)]
        reason, message = "VariantsRunning", f"running: {', '.join(running) or 'none yet'}"
    finished = sum(1 for r in rows if r["phase"] in DONE_PHASES)
    generation = body["metadata"].get("generation")
    status = {
        "phase": phase,
        "currentStage": next(
            (f"{r['name']}/{r['currentStage']}" for r in rows if r.get("currentStage")), ""
        ),
        "stagesDone": sum(r.get("stagesDone", 0) for r in rows)
        + (compare_row["phase"] in DONE_PHASES),
        "stagesTotal": sum(r.get("stagesTotal", 0) for r in rows) + 1,
        "variantProgress": f"{finished}/{len(rows)}",
        "observedGeneration": generation,
        "specDigest": digest,
        "retry": retry,
        "variants": rows,
        "stages": [compare_row],
        "conditions": conditions(
            phase, reason, message, generation, previous.get("conditions", [])
        ),
    }
    return Result(status, events)


async def _drop_stale(
    body: dict[str, Any],
    children: list[tuple[Any, Experiment]],
    plans: dict[str, list[PlannedStage]],
    retry: str,
    deps: Any,
) -> None:
    """The sweep's spec changed (or a retry): delete RayJobs that no variant's plan names."""
    meta = body["metadata"]
    wanted = {
        stage_rayjob_name(child, v.name, v.key, retry)
        for variant, child in children
        for v in plans[variant.name]
        if v.key
    }
    for job in await deps.kube.list_rayjobs(
        meta["namespace"], f"{LABEL_EXPERIMENT}={meta['name']}"
    ):
        name = job["metadata"]["name"]
        is_compare = job["metadata"].get("labels", {}).get(LABEL_STAGE) == STAGE
        if name not in wanted and not is_compare:
            await deps.kube.delete_rayjob(meta["namespace"], name)


def _variant_row(name: str, status: dict[str, Any]) -> dict[str, Any]:
    keep = ("phase", "currentStage", "stagesDone", "stagesTotal", "bestEpoch", "winRate")
    row = {"name": name, **{k: status[k] for k in keep if k in status}, "stages": status["stages"]}
    failed = next((c for c in status.get("conditions", []) if c["type"] == "Failed"), None)
    if row["phase"] == FAILED and failed is not None:
        row["message"] = failed.get("message", "")
    return row


def _waiting_row(name: str, views: list[PlannedStage]) -> dict[str, Any]:
    """A variant beyond `parallelism`: nothing is created for it yet."""
    return {
        "name": name,
        "phase": PENDING,
        "currentStage": "",
        "stagesDone": sum(1 for v in views if v.manifest is not None),
        "stagesTotal": len(views),
        "message": "waiting for a free slot (spec.sweep.parallelism)",
        "stages": [
            {"name": v.name, "phase": "Cached" if v.manifest is not None else PENDING}
            for v in views
        ],
    }


async def _compare(
    body: dict[str, Any],
    experiment: Experiment,
    retry: str,
    store: CachedStore,
    previous: dict[str, Any],
    deps: Any,
    follow: Any,
    in_store: Any,
    spec_for_rayjobs: Any,
) -> tuple[dict[str, Any], str, str, str, list[tuple[str, str, str]]]:
    """Every variant is done: the comparison artifact, or the RayJob that makes it."""
    inputs = {}
    for variant in experiment.spec.sweep.variants:
        child = variant_experiment(experiment, variant, name=experiment.metadata.name)
        # a store call: off the event loop (the manifests are usually memoised by now)
        planned = await in_store(deps, child, "the cache check", plan, child, store, deps.stages)
        views = {v.name: v for v in planned}
        for stage in INPUTS:
            inputs[(variant.name, stage)] = views[stage].manifest
    key, _ = compare_key(experiment, inputs)
    manifest = await in_store(deps, experiment, "the comparison", store.manifest, STAGE, key)
    if manifest is not None:
        row = {"name": STAGE, "phase": SUCCEEDED, "key": key, "artifactUri": manifest.uri}
        return row, SUCCEEDED, "Succeeded", "every variant done and compared", []
    namespace = body["metadata"]["namespace"]
    spec = await spec_for_rayjobs(deps, experiment, namespace, store, spec_digest(experiment))
    old = next((s for s in previous.get("stages", []) if s.get("name") == STAGE), {})
    view = PlannedStage(COMPARE, key, None)
    row, phase, why, text, events = await follow(
        body, experiment, view, spec, retry, store, old, deps
    )
    if phase in DONE_PHASES:
        return row, SUCCEEDED, "Succeeded", "every variant done and compared", events
    if phase == FAILED:
        return row, FAILED, why, text, events
    return row, RUNNING, why or phase, text or "comparing the variants", events
