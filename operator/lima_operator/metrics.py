"""Prometheus metrics: experiments by phase, stage durations, RayJob creations and failures."""

from __future__ import annotations

import datetime

from prometheus_client import Counter, Gauge, Histogram, start_http_server

EXPERIMENTS = Gauge("lima_experiments", "Experiments known to the operator, by phase", ["phase"])
STAGE_SECONDS = Histogram(
    "lima_stage_duration_seconds",
    "Wall time of a stage's RayJob, start to end",
    ["stage", "outcome"],
    buckets=(10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400),
)
RAYJOBS_CREATED = Counter("lima_rayjobs_created_total", "RayJobs created", ["stage"])
RAYJOB_FAILURES = Counter("lima_rayjob_failures_total", "Failed RayJobs", ["stage", "reason"])
RECONCILE_FAILURES = Counter(
    "lima_reconcile_failures_total",
    "Reconciles that could not be done (RBAC, webhook, KubeRay, store), by reason",
    ["reason"],
)
PHASES = ("Pending", "Running", "Suspended", "Succeeded", "Failed", "Invalid")

_phases: dict[tuple[str, str], str] = {}


def serve(port: int) -> None:
    if port:
        start_http_server(port)


def set_phase(namespace: str, name: str, phase: str | None) -> None:
    if phase is None:
        _phases.pop((namespace, name), None)
    else:
        _phases[(namespace, name)] = phase
    for known in PHASES:
        EXPERIMENTS.labels(phase=known).set(sum(1 for p in _phases.values() if p == known))


def rayjob_created(stage: str) -> None:
    RAYJOBS_CREATED.labels(stage=stage).inc()


def rayjob_failed(stage: str, reason: str) -> None:
    RAYJOB_FAILURES.labels(stage=stage, reason=reason or "Unknown").inc()


def stage_finished(stage: str, start: str | None, end: str | None, outcome: str) -> None:
    if not start or not end:
        return
    seconds = (_parse(end) - _parse(start)).total_seconds()
    STAGE_SECONDS.labels(stage=stage, outcome=outcome).observe(max(seconds, 0.0))


def _parse(stamp: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def reconcile_failed(reason: str) -> None:
    RECONCILE_FAILURES.labels(reason=reason).inc()
