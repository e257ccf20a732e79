"""The Experiment's `.status` as the operator writes it: one model; the CRD schema comes from it.

Like the spec, the status is declared once, here: the operator builds an `ExperimentStatus` (and
so cannot write a field the CRD does not know, which the API server would silently prune), and
`lima crd` renders the status schema and the `kubectl get experiments` columns from it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

ExperimentPhase = Literal["Pending", "Running", "Suspended", "Succeeded", "Failed", "Invalid"]
StagePhase = Literal["Pending", "Running", "Retrying", "Succeeded", "Cached", "Failed"]


class _Status(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def dump(self) -> dict:
        """The JSON the operator patches into `.status`: camelCase, and only the fields that were
        set (a merge patch keeps the others as they are; an explicit None clears a field)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class Condition(_Status):
    type: str = Field(description="Ready, Progressing or Failed.")
    status: Literal["True", "False", "Unknown"]
    reason: str = Field("", description="CamelCase reason of the last change.")
    message: str = Field("", description="Human-readable detail.", max_length=1024)
    last_transition_time: str | None = Field(None, json_schema_extra={"format": "date-time"})
    observed_generation: int | None = Field(None, ge=0, json_schema_extra={"format": "int64"})


class StageStatus(_Status):
    name: str = Field(description="Stage name.")
    phase: StagePhase = "Pending"
    key: str | None = Field(None, description="Content key of the stage's artifact.")
    ray_job: str | None = Field(
        None, description="Name of the stage's RayJob (empty on a cache hit)."
    )
    attempts: int | None = Field(None, ge=0, description="RayJob attempts.")
    start_time: str | None = Field(None, json_schema_extra={"format": "date-time"})
    end_time: str | None = Field(None, json_schema_extra={"format": "date-time"})
    artifact_uri: str | None = Field(None, description="URI of the published artifact.")
    message: str | None = None


_MAP_LIST = {"x-kubernetes-list-type": "map"}


class VariantStatus(_Status):
    """One variant of a sweep (`spec.sweep`): where its own stages stand."""

    name: str = Field(description="Variant name.")
    phase: ExperimentPhase = "Pending"
    current_stage: str | None = None
    stages_done: int | None = Field(None, ge=0)
    stages_total: int | None = Field(None, ge=0)
    best_epoch: int | None = None
    win_rate: str | None = None
    message: str | None = None
    stages: list[StageStatus] = Field(
        default_factory=list,
        json_schema_extra={**_MAP_LIST, "x-kubernetes-list-map-keys": ["name"]},
    )


class ExperimentStatus(_Status):
    """Progress written by the lima-run operator."""

    phase: ExperimentPhase | None = None
    current_stage: str | None = Field(None, description="The stage running or failed now.")
    stages_done: int | None = Field(None, ge=0)
    stages_total: int | None = Field(None, ge=0)
    best_epoch: int | None = Field(
        None, description="Checkpoint epoch chosen on the dev set (the select stage's result)."
    )
    win_rate: str | None = Field(
        None, description="Headline pairwise result vs the first baseline (the judge's result)."
    )
    selection_fallback: str | None = Field(
        None,
        description="Set when the epoch was chosen by `spec.judge.selection_fallback` because the "
        "judge gave too few valid verdicts.",
    )
    judge_proxy: bool | None = Field(
        None, description="The verdicts come from the embedded stand-in judge (a demo), not an LLM."
    )
    observed_generation: int | None = Field(None, ge=0, json_schema_extra={"format": "int64"})
    spec_uri: str | None = Field(None, description="Snapshot of the spec the RayJobs read.")
    spec_digest: str | None = Field(None, description="Digest of the spec last acted on.")
    retry: str | None = Field(None, description="Last `lima-run.io/retry` handled.")
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={**_MAP_LIST, "x-kubernetes-list-map-keys": ["type"]},
    )
    stages: list[StageStatus] = Field(
        default_factory=list,
        json_schema_extra={**_MAP_LIST, "x-kubernetes-list-map-keys": ["name"]},
    )
    variant_progress: str | None = Field(
        None, description="Sweeps: variants finished / variants (the Variants column)."
    )
    variants: list[VariantStatus] = Field(
        default_factory=list,
        json_schema_extra={**_MAP_LIST, "x-kubernetes-list-map-keys": ["name"]},
    )
