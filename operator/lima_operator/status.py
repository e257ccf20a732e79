"""Reading a RayJob's status and writing the Experiment's.

The RayJob mapping follows KubeRay's API exactly: success only when `jobDeploymentStatus` is
`Complete` AND `jobStatus` is `SUCCEEDED` (Complete is also set for STOPPED jobs);
`Failed`/`ValidationFailed` and STOPPED are failures; `Retrying` is a new attempt.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

PENDING, RUNNING, RETRYING = "Pending", "Running", "Retrying"
SUCCEEDED, CACHED, FAILED, INVALID = "Succeeded", "Cached", "Failed", "Invalid"
DONE_PHASES = (SUCCEEDED, CACHED)
_QUEUED = ("", "New", "Initializing", "Waiting", "Suspended", "Suspending")


@dataclass(frozen=True)
class Outcome:
    phase: str
    reason: str = ""
    message: str = ""


def rayjob_outcome(rayjob: dict[str, Any]) -> Outcome:
    status = rayjob.get("status") or {}
    deployment = status.get("jobDeploymentStatus", "")
    job = status.get("jobStatus", "")
    message = status.get("message", "")
    if deployment == "Complete" and job == "SUCCEEDED":
        return Outcome(SUCCEEDED, "Succeeded", message)
    if deployment in ("Failed", "ValidationFailed"):
        return Outcome(
            FAILED, status.get("reason") or deployment, message or f"RayJob {deployment}"
        )
    if job == "STOPPED":
        return Outcome(FAILED, "Stopped", message or "the Ray job was stopped")
    if deployment == "Complete":  # finished without SUCCEEDED: never a success
        return Outcome(FAILED, status.get("reason") or f"Job{job.title() or 'Unknown'}", message)
    if deployment == "Retrying":
        return Outcome(RETRYING, "Retrying", message or "KubeRay is retrying with a new cluster")
    if deployment in _QUEUED:
        return Outcome(PENDING, deployment or "Created", message)
    return Outcome(RUNNING, deployment, message)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    kind: str,
    ok: bool,
    reason: str,
    message: str,
    generation: int | None,
    previous: list[dict[str, Any]],
) -> dict[str, Any]:
    """A standard condition; lastTransitionTime only moves when the status flips."""
    status = "True" if ok else "False"
    old = next((c for c in previous if c.get("type") == kind), None)
    changed = old is None or old.get("status") != status
    result = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message[:1024],
        "lastTransitionTime": now() if changed else old["lastTransitionTime"],
    }
    if generation is not None:
        result["observedGeneration"] = generation
    return result


def conditions(
    phase: str, reason: str, message: str, generation: int | None, previous: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    return [
        condition("Ready", phase == SUCCEEDED, reason, message, generation, previous),
        condition(
            "Progressing", phase in (PENDING, RUNNING), reason, message, generation, previous
        ),
        condition("Failed", phase in (FAILED, INVALID), reason, message, generation, previous),
    ]
