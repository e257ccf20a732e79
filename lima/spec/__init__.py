"""The Experiment spec: one Kubernetes-shaped document for a whole LIMA run.

These pydantic models are the single source of truth: `lima validate`, the CRD in the Helm chart
(`lima crd`), the reference docs and the operator all derive from them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from lima.spec.base import API_GROUP, API_VERSION, KIND, SpecModel
from lima.spec.data import DataSpec, Source, SourceKind
from lima.spec.evaluate import (
    Baseline,
    GenerateSpec,
    JudgeBackend,
    JudgeSpec,
    PromptSet,
    Protocol,
    resolve_judge_backend,
)
from lima.spec.model import ModelSpec, TinyPreset
from lima.spec.resources import Resources, StageResources, StorageSpec
from lima.spec.sweep import SweepSpec, Variant
from lima.spec.train import TrainSpec

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "KIND",
    "Baseline",
    "DataSpec",
    "Experiment",
    "ExperimentSpec",
    "GenerateSpec",
    "JudgeBackend",
    "JudgeSpec",
    "Metadata",
    "ModelSpec",
    "PromptSet",
    "Protocol",
    "Resources",
    "Source",
    "SourceKind",
    "StageResources",
    "StorageSpec",
    "SweepSpec",
    "TinyPreset",
    "TrainSpec",
    "Variant",
]


class Metadata(SpecModel):
    """Kubernetes object metadata; only what lima-run reads is declared, the rest is allowed."""

    model_config = ConfigDict(extra="allow")  # merged with SpecModel's config by pydantic

    name: str = Field(pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length=30)
    """Experiment name: a DNS-1035 label, at most 30 characters so that derived RayJob names
    (`<name>-<stage>-<hash>`) stay within KubeRay's 47-character limit."""

    namespace: str | None = None


class ExperimentSpec(SpecModel):
    """What to curate, train, generate and judge."""

    data: DataSpec
    model: ModelSpec = Field(default_factory=ModelSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    generate: GenerateSpec = Field(default_factory=GenerateSpec)
    judge: JudgeSpec = Field(default_factory=JudgeSpec)
    resources: Resources = Field(default_factory=Resources)
    storage: StorageSpec = Field(default_factory=StorageSpec)
    sweep: SweepSpec | None = None
    """The paper's ablations: variants of this spec run side by side and compared in one report
    (docs/sweeps.md). Without it, the Experiment is one run."""
    suspend: bool = False
    """On a cluster: stop the Experiment (its running stage's RayJob is deleted; finished
    stages keep their artifacts) until set back to false, when it resumes where it stopped."""

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        """Rules across sections; each problem names its own field (`at <path>: <rule>`)."""
        from lima.spec.checks import cross_section_problems

        problems = cross_section_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _variants_are_valid(self) -> ExperimentSpec:
        """Every variant, once patched, is itself a valid spec (problems name the variant)."""
        from lima.spec.sweep import variant_problems

        problems = variant_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _judge_fits_the_model(self) -> ExperimentSpec:
        # a real model needs a real judge; the tiny demo model defaults to the proxy
        resolve_judge_backend(self.judge, self.model.base)
        return self


class Experiment(SpecModel):
    """A LIMA experiment (`kubectl apply` it, or `lima run` it)."""

    apiVersion: Literal["lima-run.io/v1alpha1"]  # noqa: N815 - Kubernetes field name
    kind: Literal["Experiment"]
    metadata: Metadata
    spec: ExperimentSpec
