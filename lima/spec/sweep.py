"""`spec.sweep`: the paper's ablations as one Experiment (LIMA section 5).

A sweep is a list of named variants, each a JSON merge patch (RFC 7386) of the Experiment's spec:
objects merge key by key, a list or a scalar replaces the value it patches, `null` removes a key.
Every variant shares the judge, its baselines and the storage, so their numbers are comparable
and their artifacts share one store: two variants with the same curation settings share one
curated dataset (the content key is the same), so a sweep over training size curates once.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from lima.spec.base import SpecModel

SHARED_SECTIONS = ("judge", "storage", "sweep")
"""Sections a variant may not patch: the comparison needs one judge and one store."""

VARIANT_NAME = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"


class Variant(SpecModel):
    name: str = Field(pattern=VARIANT_NAME, max_length=20)
    """Variant name (a DNS label): its runs are recorded as Experiment `<name>-<variant>`."""

    description: str = ""
    """What this variant tests, shown in the comparison report."""

    patch: dict[str, Any] = Field(
        default_factory=dict, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    """JSON merge patch of `spec` (e.g. `{train: {max_examples: 2000}}`); `{}` runs
    the spec as written. Lists are replaced whole (RFC 7386), e.g. `data.sources`."""


class SweepSpec(SpecModel):
    """Variants of this Experiment run side by side and compared (the paper's Figures 5 and 6)."""

    variants: list[Variant] = Field(min_length=2, max_length=32)
    """At least two variants; each is a patch of the rest of this spec."""

    baseline: str | None = None
    """The variant every other variant is judged against pairwise (default: the first)."""

    parallelism: int = Field(default=2, ge=1, le=32)
    """On a cluster: how many variants run their stages at the same time. Locally, variants
    run one after another (one Ray instance serves them all)."""

    @model_validator(mode="after")
    def _names(self) -> SweepSpec:
        names = [v.name for v in self.variants]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"variant names must be unique (repeated: {', '.join(repeated)})")
        if self.baseline is not None and self.baseline not in names:
            raise ValueError(f"baseline {self.baseline!r} is not a variant ({', '.join(names)})")
        for index, variant in enumerate(self.variants):
            touched = sorted(set(variant.patch) & set(SHARED_SECTIONS))
            if touched:
                raise ValueError(
                    f"variants[{index}].patch may not change {', '.join(touched)}: every variant "
                    "shares the judge, the storage and the sweep"
                )
        return self

    @property
    def baseline_name(self) -> str:
        return self.baseline or self.variants[0].name


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, `null` deletes, the rest replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def variant_document(spec: Any, variant: Variant) -> dict[str, Any]:
    """The spec of one variant as a plain document: this spec without `sweep`, patched."""
    base = spec.model_dump(mode="json", exclude={"sweep"}, exclude_unset=True)
    return merge_patch(base, variant.patch)


def variant_problems(spec: Any) -> list[str]:
    """`at sweep.variants[i].patch.<path>: <rule>` for each problem of a patched variant."""
    from pydantic import ValidationError

    if spec.sweep is None:
        return []
    problems: list[str] = []
    for index, variant in enumerate(spec.sweep.variants):
        where = f"sweep.variants[{index}].patch"
        try:
            type(spec).model_validate(variant_document(spec, variant))
        except ValidationError as error:
            for problem in error.errors():
                path = ".".join(str(part) for part in problem["loc"])
                message = problem["msg"].removeprefix("Value error, ")
                problems.append(f"at {where}{'.' + path if path else ''}: {message}")
    return problems
