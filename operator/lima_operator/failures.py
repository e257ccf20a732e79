"""Every way a reconcile can fail, as the Experiment's status and an Event, never only a log line.

A failure is either waiting on the platform (RBAC, KubeRay missing or too old, the artifact store
or the API server not answering): phase Pending, and the operator tries again by itself after
`retry_s`; or rejected for this spec (an admission webhook said no): phase Failed, until the
spec changes or the retry annotation is bumped. Either way the Failed/Progressing condition
carries a CamelCase reason and the API server's (or store's) own message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lima.errors import LimaError, StoreError
from lima_operator.kube import KubeError
from lima_operator.offload import StoreUnavailableError
from lima_operator.status import FAILED, PENDING, conditions


class KubeRayUnsupportedError(LimaError):
    """The installed KubeRay cannot run our RayJobs (missing, or its CRD too old)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Failure:
    phase: str
    reason: str
    message: str
    retry_s: float | None  # None: wait for a spec change or a retry annotation


def classify(error: Exception) -> Failure:
    """The phase, reason and message an error means for the Experiment."""
    if isinstance(error, StoreUnavailableError):
        return Failure(PENDING, "StoreUnavailable", str(error), 5)
    if isinstance(error, StoreError):
        return Failure(PENDING, "StoreError", str(error), 30)
    if isinstance(error, KubeRayUnsupportedError):
        return Failure(PENDING, error.reason, str(error), 60)
    if isinstance(error, KubeError):
        return _api_failure(error)
    return Failure(PENDING, "ReconcileError", f"{type(error).__name__}: {error}"[:1024], 30)


def _api_failure(error: KubeError) -> Failure:
    what, said = error.what, error.message
    if error.status == 403:
        return Failure(
            PENDING,
            "Forbidden",
            f"{what} was forbidden: {said} (the operator's RBAC lacks it; see the chart's "
            "templates/rbac.yaml)",
            30,
        )
    if error.status == 404:
        return Failure(
            PENDING,
            "NotFound",
            f"{what}: {said} (is KubeRay installed, with its RayJob CRD?)",
            30,
        )
    if error.status in (400, 422):
        return Failure(FAILED, "RayJobRejected", f"{what} was rejected: {said}", None)
    return Failure(PENDING, "APIError", str(error), 15)


def failure_status(
    body: dict[str, Any], failure: Failure, extra: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """The status fields to write for `failure`, and the Warning event (once per message)."""
    previous = body.get("status") or {}
    generation = (body.get("metadata") or {}).get("generation")
    status = {
        "phase": failure.phase,
        "observedGeneration": generation,
        "conditions": conditions(
            failure.phase,
            failure.reason,
            failure.message,
            generation,
            previous.get("conditions", []),
        ),
        **(extra or {}),
    }
    shown = {(c.get("reason"), c.get("message")) for c in previous.get("conditions", [])}
    repeated = (
        previous.get("phase") == failure.phase
        and (
            failure.reason,
            failure.message[:1024],
        )
        in shown
    )
    events = [] if repeated else [("Warning", failure.reason, failure.message)]
    return status, events
