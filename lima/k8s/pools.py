"""Node pools: what the chart's `pools:` value declares and what a stage may ask of it.

The chart renders `pools:` into a ConfigMap (key `pools.yaml`); the operator loads it with
`load_pools` and refuses an Experiment whose stages ask more than a pool allows (`check_pools`).
"""

from __future__ import annotations

import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lima.errors import LimaError
from lima.spec import Experiment, StageResources
from lima.spec.resources import QUANTITY

POOLS_KEY = "pools.yaml"
_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


class Toleration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: int | None = None  # noqa: N815 - Kubernetes field name

    def manifest(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class Pool(BaseModel):
    """One node pool: where its workers go and the most a stage may ask of it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = ""
    nodeSelector: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    tolerations: list[Toleration] = Field(default_factory=list)
    gpuType: str | None = None  # noqa: N815 - informative (`nvidia.com/gpu.product`), a pod label
    gpusPerWorker: int = Field(default=0, ge=0)  # noqa: N815
    cpusPerWorker: float = Field(default=4, gt=0)  # noqa: N815
    memoryPerWorker: str = Field(default="16Gi", pattern=QUANTITY)  # noqa: N815
    minWorkers: int = Field(default=0, ge=0)  # noqa: N815
    maxWorkers: int = Field(default=4, ge=1)  # noqa: N815
    # Per-pool pod overrides (worker pods). Kubernetes objects are passed through as written:
    # the API server validates them, and the chart's values.schema.json checks their shape.
    image: str | None = None
    """Runtime image of this pool's workers (e.g. the `-cuda` build); the chart's when empty."""
    affinity: dict[str, Any] = Field(default_factory=dict)
    priorityClassName: str | None = None  # noqa: N815
    volumes: list[dict[str, Any]] = Field(default_factory=list)
    """Extra volumes, e.g. an HF cache PVC; mounted with `volumeMounts`."""
    volumeMounts: list[dict[str, Any]] = Field(default_factory=list)  # noqa: N815
    imagePullSecrets: list[dict[str, str]] = Field(default_factory=list)  # noqa: N815
    podLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    podAnnotations: dict[str, str] = Field(default_factory=dict)  # noqa: N815

    @model_validator(mode="after")
    def _ordered(self) -> Pool:
        if self.minWorkers > self.maxWorkers:
            raise ValueError(f"minWorkers ({self.minWorkers}) > maxWorkers ({self.maxWorkers})")
        mounted = {m.get("name") for m in self.volumeMounts}
        declared = {v.get("name") for v in self.volumes}
        if mounted - declared:
            missing = ", ".join(sorted(str(n) for n in mounted - declared))
            raise ValueError(f"volumeMounts name volumes that `volumes` lacks: {missing}")
        return self

    @property
    def elastic(self) -> bool:
        """Workers come and go with demand (Ray's autoscaler) when min < max."""
        return self.minWorkers < self.maxWorkers


DEFAULT_POOLS = {"cpu": Pool(name="cpu")}


def quantity_bytes(text: str) -> float:
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)", text)
    if not match or match.group(2) not in _UNITS:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def load_pools(text: str | None) -> dict[str, Pool]:
    """Pools from the ConfigMap's `pools.yaml` (a mapping name -> pool); defaults when empty."""
    document = yaml.safe_load(text) if text else None
    if not document:
        return dict(DEFAULT_POOLS)
    if not isinstance(document, dict):
        raise LimaError(f"{POOLS_KEY}: must be a mapping of pool name -> pool")
    pools = {}
    for name, body in document.items():
        try:
            pools[name] = Pool.model_validate({**(body or {}), "name": name})
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise LimaError(f"{POOLS_KEY}: pools.{name}.{where}: {first['msg']}") from None
    return pools


def stage_resources(experiment: Experiment, stage: str) -> StageResources:
    """`spec.resources.<stage>`, or the defaults for a stage the section does not name."""
    return getattr(experiment.spec.resources, stage, None) or StageResources()


def check_pools(
    experiment: Experiment, pools: dict[str, Pool], stages: list[str] | None = None
) -> list[str]:
    """Every way a stage asks more than its pool allows, as `spec.resources.<stage>.<field>`."""
    names = stages or list(type(experiment.spec.resources).model_fields)
    problems: list[str] = []
    for stage in names:
        res = stage_resources(experiment, stage)
        where = f"spec.resources.{stage}"
        pool = pools.get(res.pool)
        if pool is None:
            known = ", ".join(sorted(pools)) or "none"
            problems.append(f"{where}.pool: unknown pool {res.pool!r} (known: {known})")
            continue
        limits = [
            ("workers", res.workers, pool.maxWorkers, "maxWorkers", res.workers),
            ("gpus", res.gpus, pool.gpusPerWorker, "gpusPerWorker", res.gpus),
            ("cpus", res.cpus, pool.cpusPerWorker, "cpusPerWorker", res.cpus),
            (
                "memory",
                quantity_bytes(res.memory),
                quantity_bytes(pool.memoryPerWorker),
                "memoryPerWorker",
                res.memory,
            ),
        ]
        for field, asked, allowed, pool_field, shown in limits:
            if asked > allowed:
                allowed_shown = getattr(pool, pool_field)
                problems.append(
                    f"{where}.{field}: must be <= {allowed_shown} ({pool_field} of pool "
                    f"{pool.name!r}) (got {shown})"
                )
    return problems
