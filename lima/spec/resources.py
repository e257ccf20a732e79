"""`spec.resources` and `spec.storage`: where each stage runs and where artifacts go."""

from __future__ import annotations

import re

from pydantic import Field

from lima.spec.base import SpecModel
from lima.spec.data import DNS_LABEL

QUANTITY = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"

# A key segment is letters, digits, `.`, `_`, `-`, but never `.` or `..`. Written without
# look-arounds so that the same pattern works in the CRD (Kubernetes uses RE2).
_SEGMENT = r"([A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)"
KEY_SEGMENT = re.compile(f"^{_SEGMENT}$")
PREFIX_PATTERN = f"^({_SEGMENT}(/{_SEGMENT})*/?)?$"
PREFIX_RULE = (
    "must be a relative key prefix: segments of A-Z a-z 0-9 . _ - joined by '/', "
    "with no leading '/', no '.' or '..' segment and no empty segment"
)


def safe_segment(part: str) -> bool:
    return len(part) <= 128 and bool(KEY_SEGMENT.match(part))


def prefix_problem(prefix: str) -> str | None:
    """Why `prefix` could address objects outside the store root or bucket (None: it cannot).

    The one rule for the spec (`lima validate`, the CRD) and the store (every key it builds)."""
    if re.match(PREFIX_PATTERN, prefix) and all(len(p) <= 128 for p in prefix.split("/")):
        return None
    return PREFIX_RULE


class StageResources(SpecModel):
    """Compute for one stage. On a cluster, `pool` names a node pool of the Helm chart."""

    pool: str = Field(default="cpu", pattern=DNS_LABEL, max_length=40)
    """Node pool (chart value `pools`); its limits are checked when the Experiment is admitted."""

    workers: int = Field(default=1, ge=1, le=1024)
    """Ray workers (train: data-parallel ranks; generate: model replicas)."""

    cpus: float = Field(default=1, gt=0)
    """CPUs per worker."""

    gpus: int = Field(default=0, ge=0, le=16)
    """GPUs per worker."""

    memory: str = Field(default="4Gi", pattern=QUANTITY)
    """Memory per worker, as a Kubernetes quantity."""

    timeout_s: int | None = Field(default=None, ge=1)
    """Deadline of the stage's RayJob (`activeDeadlineSeconds`)."""

    retries: int = Field(default=0, ge=0, le=10)
    """RayJob `backoffLimit`."""

    queue: str | None = None
    """Kueue LocalQueue for the stage's RayJob (`kueue.x-k8s.io/queue-name`)."""


class Resources(SpecModel):
    """Resources of each stage."""

    curate: StageResources = Field(default_factory=lambda: StageResources(workers=2))
    train: StageResources = Field(default_factory=lambda: StageResources(workers=2))
    generate: StageResources = Field(default_factory=lambda: StageResources(workers=2))
    select: StageResources = Field(default_factory=lambda: StageResources(workers=2))
    """Checkpoint selection generates dev answers for every eligible epoch: size it like
    `generate`."""
    judge: StageResources = Field(default_factory=StageResources)
    report: StageResources = Field(default_factory=StageResources)


class StorageSpec(SpecModel):
    """Artifact location. Credentials are runtime settings (`LIMA_S3_*`), never part of the
    spec; so is the endpoint, unless `endpoint` names another one for this experiment."""

    endpoint: str | None = Field(
        default=None,
        pattern=r"^(https?://)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?/?$",
    )
    """S3 endpoint of this experiment's bucket (`host:port` or an `http(s)://` URL, no user or
    path), e.g. another region's endpoint that accepts the same credentials; empty: the
    platform's (`LIMA_S3_ENDPOINT`)."""

    bucket: str = Field(default="lima", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    """S3 bucket (ignored by the local file backend)."""

    prefix: str = Field(default="lima", max_length=512, pattern=PREFIX_PATTERN)
    """Key prefix of every object this experiment writes (relative: no leading `/`, no `..`),
    inside the bucket on S3 and inside `LIMA_WORK_DIR/artifacts` locally."""
