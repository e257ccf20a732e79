"""One reconciliation of an Experiment: observe store and RayJobs, act, return the new status.

Idempotent by construction: RayJob names are deterministic (`<exp>-<stage>-<hash(key, retry)>`)
and looked up before anything is created, so a restarted operator adopts what exists.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import kopf

from lima.dag import PlannedStage, Stage, plan
from lima.errors import LimaError, SpecError
from lima.k8s.cluster_rules import local_path_problems
from lima.k8s.kuberay import InstalledKubeRay
from lima.k8s.pools import POOLS_KEY, Pool, check_pools, load_pools, stage_resources
from lima.k8s.rayjob import (
    LABEL_EXPERIMENT,
    LABEL_KEY,
    MAX_INLINE_SPEC,
    build_rayjob,
    stage_rayjob_name,
)
from lima.settings import Settings
from lima.spec import Experiment
from lima.spec.load import parse_experiment
from lima.spec.status import ExperimentStatus
from lima.store import open_store, storage_settings
from lima_operator import metrics
from lima_operator.artifacts import (
    CachedStore,
    SpecRef,
    headline,
    publish_spec,
    spec_digest,
    spec_json,
)
from lima_operator.config import OperatorConfig
from lima_operator.failures import KubeRayUnsupportedError
from lima_operator.kube import KubeClient
from lima_operator.offload import Offloader
from lima_operator.status import (
    CACHED,
    DONE_PHASES,
    FAILED,
    INVALID,
    PENDING,
    RUNNING,
    SUCCEEDED,
    conditions,
    now,
    rayjob_outcome,
)
from lima_operator.suspend import suspend

log = logging.getLogger("lima_operator")
RETRY_ANNOTATION = "lima-run.io/retry"


@dataclass
class Deps:
    """What a reconciliation needs from the outside world."""

    kube: KubeClient
    config: OperatorConfig
    settings: Settings
    stages: list[Stage]
    pools: dict[str, Pool] = field(default_factory=dict)
    """The pools ConfigMap as read at the start of this reconciliation."""
    rayjobs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """Latest RayJobs seen by the operator's RayJob watch, by (namespace, name)."""
    kuberay: InstalledKubeRay = field(default_factory=InstalledKubeRay)
    """The installed KubeRay's RayJob CRD, as read at start-up (and again while missing)."""
    offload: Offloader = field(default_factory=lambda: Offloader(10.0))
    """Runs every artifact-store call off the event loop, with a deadline per endpoint."""


async def in_store(deps: Deps, experiment: Experiment, what: str, call: Any, *args: Any) -> Any:
    """`call(*args)`, a blocking store call, off the event loop (lima_operator.offload)."""
    endpoint = storage_settings(deps.settings, experiment.spec.storage).s3_endpoint or "local"
    return await deps.offload.run(endpoint, what, call, *args)


@dataclass
class Result:
    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)

    def __post_init__(self) -> None:
        # Only what the CRD declares (ExperimentStatus): an unknown field would be pruned by the
        # API server without a word, so it fails here instead.
        self.status = ExperimentStatus.model_validate(self.status).dump()


_parsed: dict[str, Experiment | SpecError] = {}
_PARSED_MAX = 1024


def parse(body: dict[str, Any]) -> Experiment:
    """The validated Experiment, memoised by its document (reconciles repeat the same spec)."""
    meta = body.get("metadata") or {}
    document = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {"name": meta.get("name")},
        "spec": body.get("spec"),
    }
    where = f"{meta.get('namespace')}/{meta.get('name')}"
    memo = where + json.dumps(document, sort_keys=True, default=str)
    found = _parsed.get(memo)
    if found is None:
        try:
            found = parse_experiment(document, where)
        except SpecError as error:
            found = error
        if len(_parsed) >= _PARSED_MAX:
            _parsed.pop(next(iter(_parsed)))  # oldest first
        _parsed[memo] = found
    if isinstance(found, SpecError):
        raise found
    return found


_pools_cache: dict[str, tuple[float, str | None]] = {}
_pools_parsed: dict[str | None, dict[str, Pool]] = {}
_stores: dict[str, CachedStore] = {}


def cached_store(deps: Deps, experiment: Experiment) -> CachedStore:
    """One store client (and its manifest memo) per storage section, not one per reconcile."""
    storage = experiment.spec.storage
    where = storage.model_dump_json()
    if where not in _stores:
        _stores[where] = CachedStore(open_store(deps.settings, storage))
    return _stores[where]


def forget_caches() -> None:
    """Drop every memo (operator start-up: settings or stores may differ)."""
    from lima_operator.artifacts import _DUMPED

    for memo in (_parsed, _pools_cache, _pools_parsed, _stores, _DUMPED):
        memo.clear()


async def load_cluster_pools(deps: Deps) -> dict[str, Pool]:
    """The pools ConfigMap, re-read at most every `pools_cache_s` (every reconcile needs it;
    one read per interval is enough to follow `helm upgrade` of the pools), parsed once."""
    where = f"{deps.config.namespace}/{deps.config.pools_configmap}"
    cached = _pools_cache.get(where)
    if cached is None or time.monotonic() - cached[0] > deps.config.pools_cache_s:
        found = await deps.kube.get_configmap(deps.config.namespace, deps.config.pools_configmap)
        cached = (time.monotonic(), ((found or {}).get("data") or {}).get(POOLS_KEY))
        _pools_cache[where] = cached
    if cached[1] not in _pools_parsed:  # the YAML is parsed once per content, not per reconcile
        _pools_parsed.clear()
        _pools_parsed[cached[1]] = load_pools(cached[1])
    return _pools_parsed[cached[1]]


def _settled(status: dict[str, Any], digest: str, retry: str) -> bool:
    """Nothing to do: finished for this spec, and no retry was asked since."""
    same = status.get("specDigest") == digest and status.get("retry", "0") == retry
    return same and status.get("phase") in (SUCCEEDED, FAILED, INVALID)


def _invalid(body: dict[str, Any], problems: list[str], reason: str) -> Result:
    status = body.get("status") or {}
    message = "; ".join(problems)
    generation = (body.get("metadata") or {}).get("generation")
    new = {
        "phase": INVALID,
        "currentStage": "",
        "retry": _retry(body),
        "observedGeneration": generation,
        "conditions": conditions(
            INVALID, reason, message, generation, status.get("conditions", [])
        ),
    }
    events = (
        []
        if status.get("phase") == INVALID and _message(status) == message
        else [("Warning", reason, message)]
    )
    return Result(new, events)


def _message(status: dict[str, Any]) -> str:
    return next(
        (c.get("message", "") for c in status.get("conditions", []) if c.get("type") == "Failed"),
        "",
    )


def _retry(body: dict[str, Any]) -> str:
    return str(((body.get("metadata") or {}).get("annotations") or {}).get(RETRY_ANNOTATION, "0"))


async def reconcile(body: dict[str, Any], deps: Deps) -> Result | None:
    """New status (and events) for `body`, or None when there is nothing to change."""
    status = dict(body.get("status") or {})
    meta = body["metadata"]
    retry = _retry(body)
    try:
        experiment = parse(body)
    except SpecError as error:
        unchanged = _message(status) == "; ".join(error.problems)
        if status.get("phase") == INVALID and status.get("retry", "0") == retry and unchanged:
            return None
        return _invalid(body, error.problems, "InvalidSpec")
    problems = local_path_problems(experiment)
    if problems:  # Ray pods cannot read the laptop's files: say so before any cluster starts
        result = _invalid(body, problems, "LocalPaths")
        result.status["specDigest"] = spec_digest(experiment)
        return result
    digest = spec_digest(experiment)
    if _settled(status, digest, retry):
        return None
    if experiment.spec.suspend:
        return await suspend(body, digest, retry, deps)
    names = [s.name for s in deps.stages]
    try:
        pools = await load_cluster_pools(deps)
        problems = check_pools(experiment, pools, names)
    except LimaError as error:
        pools, problems = {}, [str(error)]
    if problems:
        result = _invalid(body, problems, "PoolLimits")
        result.status["specDigest"] = digest
        return result
    store = cached_store(deps, experiment)
    if experiment.spec.sweep is not None:  # variants, then the comparison (lima_operator.sweeps)
        from lima_operator.sweeps import reconcile_sweep

        deps.pools = pools
        return await reconcile_sweep(body, experiment, digest, retry, store, deps)
    views = await in_store(
        deps, experiment, "the cache check", plan, experiment, store, deps.stages
    )
    if status.get("specDigest") not in (None, digest) or status.get("retry", "0") != retry:
        await _drop_stale(meta, experiment, views, retry, deps)
    spec = await spec_for_rayjobs(deps, experiment, meta["namespace"], store, digest)
    deps.pools = pools
    return await _advance(body, experiment, views, spec, digest, retry, store, deps)


async def spec_for_rayjobs(
    deps: Deps, experiment: Experiment, namespace: str, store: CachedStore, digest: str
) -> SpecRef:
    """What the RayJobs of `experiment` read: the spec itself, carried in each RayJob (no store
    write before the first RayJob), or a store snapshot when it is too large to carry."""
    text = spec_json(experiment)
    if len(text.encode()) <= MAX_INLINE_SPEC:
        return SpecRef(digest, document=text)
    uri = await in_store(
        deps, experiment, "the spec snapshot", publish_spec, experiment, namespace, store
    )
    return SpecRef(digest, uri=uri)


async def _drop_stale(
    meta: dict[str, Any],
    experiment: Experiment,
    views: list[PlannedStage],
    retry: str,
    deps: Deps,
) -> None:
    """Spec changed (or a retry): delete RayJobs that no longer match the plan, finished or not.

    Unchanged stages keep their keys, so their artifacts are cache hits: the pipeline restarts
    from the first stage whose configuration (or input) changed.
    """
    wanted = {stage_rayjob_name(experiment, v.name, v.key, retry) for v in views if v.key}
    selector = f"{LABEL_EXPERIMENT}={meta['name']}"
    for job in await deps.kube.list_rayjobs(meta["namespace"], selector):
        if job["metadata"]["name"] not in wanted:
            log.info("deleting stale RayJob %s", job["metadata"]["name"])
            await deps.kube.delete_rayjob(meta["namespace"], job["metadata"]["name"])


async def _advance(
    body: dict[str, Any],
    experiment: Experiment,
    views: list[PlannedStage],
    spec: SpecRef,
    digest: str,
    retry: str,
    store: CachedStore,
    deps: Deps,
) -> Result:
    meta = body["metadata"]
    old = {s["name"]: s for s in (body.get("status") or {}).get("stages", [])}
    rows: list[dict[str, Any]] = []
    events: list[tuple[str, str, str]] = []
    phase, reason, message, current = SUCCEEDED, "Succeeded", "all stages done", ""
    index = 0
    while index < len(views):
        view, previous = views[index], old.get(views[index].name, {})
        if view.manifest is not None:
            rows.append(_done_row(view, previous))
            index += 1
            continue
        row, outcome_phase, why, text, new_events = await _follow(
            body, experiment, view, spec, retry, store, previous, deps
        )
        events += new_events
        if outcome_phase in DONE_PHASES:
            # Its artifact now exists: later stages' keys become computable.
            old[view.name] = row
            views = await in_store(
                deps, experiment, "the cache check", plan, experiment, store, deps.stages
            )
            continue
        rows.append(row)
        rows += [{"name": v.name, "phase": PENDING} for v in views[index + 1 :]]
        current = view.name
        phase, reason, message = (
            (FAILED, why, text)
            if outcome_phase == FAILED
            else (
                RUNNING,
                why or outcome_phase,
                text or f"stage {view.name} {outcome_phase.lower()}",
            )
        )
        break
    previous_status = body.get("status") or {}
    if phase == SUCCEEDED and previous_status.get("phase") != SUCCEEDED:
        events.append(("Normal", "Succeeded", f"all {len(views)} stages done"))
    generation = meta.get("generation")
    status = {
        "phase": phase,
        "currentStage": current,
        "stagesDone": sum(1 for r in rows if r["phase"] in DONE_PHASES),
        "stagesTotal": len(views),
        "observedGeneration": generation,
        "specDigest": digest,
        "specUri": spec.uri,  # None (cleared) when the RayJobs carry the spec
        "retry": retry,
        "stages": rows,
        "conditions": conditions(
            phase, reason, message, generation, previous_status.get("conditions", [])
        ),
        **headline(views),
    }
    return Result(status, events)


def _done_row(view: PlannedStage, previous: dict[str, Any]) -> dict[str, Any]:
    ran = (
        bool(previous.get("rayJob"))
        and previous.get("key") == view.key
        and previous.get("phase") != CACHED
    )
    row = {
        "name": view.name,
        "phase": SUCCEEDED if ran else CACHED,
        "key": view.key,
        "artifactUri": view.manifest.uri,
    }
    for field_name in ("rayJob", "attempts", "startTime", "endTime"):
        if ran and previous.get(field_name) is not None:
            row[field_name] = previous[field_name]
    if ran and "endTime" not in row:
        row["endTime"] = now()
    return row


async def _follow(
    body: dict[str, Any],
    experiment: Experiment,
    view: PlannedStage,
    spec: SpecRef,
    retry: str,
    store: CachedStore,
    previous: dict[str, Any],
    deps: Deps,
) -> tuple[dict[str, Any], str, str, str, list[tuple[str, str, str]]]:
    """Create the stage's RayJob if needed, then read where it stands."""
    meta = body["metadata"]
    namespace = meta["namespace"]
    name = stage_rayjob_name(experiment, view.name, view.key, retry)
    same = previous.get("rayJob") == name
    row = {
        "name": view.name,
        "key": view.key,
        "rayJob": name,
        "startTime": previous.get("startTime") if same else now(),
        "attempts": previous.get("attempts", 1) if same else 1,
    }
    events: list[tuple[str, str, str]] = []
    # A RayJob this status never named cannot exist unless an operator died between creating
    # it and writing the status: create straight away (a 409 then adopts the existing one).
    job = deps.rayjobs.get((namespace, name))
    if job is None and same:
        job = await deps.kube.get_rayjob(namespace, name)
    if job is None:
        job, new = await _create(body, experiment, view, spec, retry, deps)
        deps.rayjobs.setdefault((namespace, name), job)  # the watch may already know a newer one
        if new:
            events.append(("Normal", "StageStarted", f"stage {view.name}: RayJob {name} created"))
    outcome = rayjob_outcome(job)
    row["phase"] = outcome.phase
    if outcome.phase == "Retrying":
        row["attempts"] = int((job.get("status") or {}).get("failed", 0)) + 1
    if outcome.message:
        row["message"] = outcome.message[:1024]
    if outcome.phase == SUCCEEDED:
        manifest = await in_store(
            deps, experiment, f"the {view.name} manifest", store.manifest, view.name, view.key
        )
        if manifest is None:
            row.update(phase=FAILED, message="the RayJob succeeded but published no artifact")
            outcome = type(outcome)(FAILED, "NoArtifact", row["message"])
        else:
            row.update(artifactUri=manifest.uri, endTime=now())
            metrics.stage_finished(view.name, row["startTime"], row["endTime"], SUCCEEDED)
    if outcome.phase == FAILED:
        row["endTime"] = (
            previous.get("endTime") if same and previous.get("phase") == FAILED else now()
        )
        text = f"stage {view.name} failed ({outcome.reason}): {outcome.message}"
        if previous.get("phase") != FAILED or not same:
            events.append(("Warning", "StageFailed", text))
            metrics.rayjob_failed(view.name, outcome.reason)
            metrics.stage_finished(view.name, row["startTime"], row["endTime"], FAILED)
        return row, FAILED, outcome.reason, text, events
    return row, outcome.phase, outcome.reason, outcome.message, events


async def _create(
    body: dict[str, Any],
    experiment: Experiment,
    view: PlannedStage,
    spec: SpecRef,
    retry: str,
    deps: Deps,
) -> tuple[dict[str, Any], bool]:
    pool = deps.pools[stage_resources(experiment, view.name).pool]  # checked by check_pools
    job = build_rayjob(
        experiment,
        view.name,
        key=view.key,
        spec_uri=spec.uri,
        spec_document=spec.document,
        spec_digest=spec.digest,
        namespace=body["metadata"]["namespace"],
        image=deps.config.image,
        pool=pool,
        s3=deps.config.s3_ref(deps.settings),
        attempt=retry,
        options=deps.config.rayjob_options(
            deps.settings, pre_running_deadline=deps.kuberay.pre_running_deadline
        ),
    )
    kopf.adopt(job, owner=body)  # ownerReference: the RayJob goes when the Experiment goes
    job["metadata"]["labels"][LABEL_KEY] = view.key[:63]
    problem = deps.kuberay.problem(job)  # what the installed KubeRay would drop or lacks
    if problem is not None:
        reason = "KubeRayMissing" if deps.kuberay.present is False else "KubeRayTooOld"
        raise KubeRayUnsupportedError(reason, problem)
    created, new = await deps.kube.create_rayjob(job)
    if new:
        metrics.rayjob_created(view.name)
    return created, new
