"""`spec.suspend: true`: stop an Experiment without losing anything; `false` resumes it.

Suspending deletes the Experiment's RayJobs that have not finished (their Ray clusters go with
them, freeing the GPUs); published artifacts stay, so on resume every finished stage is a cache
hit and the interrupted stage starts again with a fresh RayJob. Nothing new is created while
suspended. A RayJob's own `suspend` is not used: Kueue owns that field for admission.
"""

from __future__ import annotations

from typing import Any

from lima.k8s.rayjob import LABEL_EXPERIMENT
from lima_operator.status import FAILED, INVALID, SUCCEEDED, conditions

SUSPENDED = "Suspended"
_FINISHED = ("Complete", "Failed", "ValidationFailed")


async def suspend(body: dict[str, Any], digest: str, retry: str, deps: Any) -> Any:
    """Delete the unfinished RayJobs; the Suspended status (None: already finished)."""
    from lima_operator.reconcile import Result  # reconcile imports this module

    meta = body["metadata"]
    previous = body.get("status") or {}
    if previous.get("phase") in (SUCCEEDED, FAILED, INVALID):
        return None  # nothing runs: suspending a finished Experiment changes nothing
    selector = f"{LABEL_EXPERIMENT}={meta['name']}"
    stopped = []
    for job in await deps.kube.list_rayjobs(meta["namespace"], selector):
        state = (job.get("status") or {}).get("jobDeploymentStatus", "")
        if state not in _FINISHED:
            await deps.kube.delete_rayjob(meta["namespace"], job["metadata"]["name"])
            deps.rayjobs.pop((meta["namespace"], job["metadata"]["name"]), None)
            stopped.append(job["metadata"]["name"])
    message = "suspended (spec.suspend); set it to false to resume"
    if stopped:
        message += f"; deleted RayJob {', '.join(sorted(stopped))}"
    generation = meta.get("generation")
    stages = [
        {**row, "phase": "Pending"} if row.get("phase") in ("Running", "Retrying") else row
        for row in previous.get("stages", [])
    ]
    status = {
        "phase": SUSPENDED,
        "observedGeneration": generation,
        "specDigest": digest,
        "retry": retry,
        "stages": stages,
        "conditions": conditions(
            SUSPENDED, SUSPENDED, message, generation, previous.get("conditions", [])
        ),
    }
    events = [] if previous.get("phase") == SUSPENDED else [("Normal", SUSPENDED, message)]
    return Result(status, events)
