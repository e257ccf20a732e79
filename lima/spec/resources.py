"""`spec.resources` and `spec.storage`: where each stage runs and where artifacts go."""

from __future__ import annotations

from pydantic import Field

from lima.spec.base import SpecModel
from lima.spec.data import DNS_LABEL

QUANTITY = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"


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
    """Artifact location. The endpoint and credentials are runtime settings (`LIMA_S3_*`),
    never part of the spec."""

    bucket: str = Field(default="lima", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    """S3 bucket (ignored by the local file backend)."""

    prefix: str = Field(default="lima", pattern=r"^[A-Za-z0-9._/-]*$")
    """Key prefix of every object this experiment writes."""
