"""Relative paths in an Experiment file mean "next to this file", wherever `lima` is run from.

`lima run examples/experiment.yaml` from the repository root and
`cd /tmp && lima run /repo/examples/experiment.yaml` must read the same files, so every local
path the spec names is made absolute against the file's folder when the file is loaded.
URIs (`s3://`, `curated:`), absolute paths and names that are not paths (HF ids) stay as written.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lima.spec import Experiment

_NOT_LOCAL = ("s3://", "curated:", "http://", "https://")


def anchor(location: str, base: Path) -> str:
    """`location` made absolute against `base` when it is a relative local path."""
    if location.startswith(_NOT_LOCAL):
        return location
    if location.startswith("file://"):
        path = Path(location.removeprefix("file://")).expanduser()
        return location if path.is_absolute() else str(base / path)
    path = Path(location).expanduser()
    return str(path) if path.is_absolute() else str(base / path)


def anchor_model(location: str, base: Path) -> str:
    """A model location: `tiny` and HF ids (`org/name`) stay; an existing or `./`-style path is
    anchored. `org/name` that exists next to the file is the user's folder, not a hub id."""
    if location == "tiny" or location.startswith(_NOT_LOCAL):
        return location
    explicit = location.startswith((".", "/", "~", "file://"))
    if explicit or (base / location).exists():
        return anchor(location, base)
    return location


def resolve_spec_paths(experiment: Experiment, base: Path) -> Experiment:
    """A copy of `experiment` whose local paths are absolute against `base` (the file's folder)."""
    spec = experiment.spec
    base = base.resolve()
    sources = [s.model_copy(update={"uri": anchor(s.uri, base)}) for s in spec.data.sources]
    prompt_sets = [
        p.model_copy(update={"uri": anchor(p.uri, base)}) for p in spec.generate.prompt_sets
    ]
    baselines = [
        b.model_copy(
            update={
                "answers": anchor(b.answers, base) if b.answers else None,
                "model": anchor_model(b.model, base) if b.model else None,
            }
        )
        for b in spec.judge.baselines
    ]
    model = spec.model.model_copy(
        update={
            "base": anchor_model(spec.model.base, base),
            "tokenizer": anchor_model(spec.model.tokenizer, base) if spec.model.tokenizer else None,
        }
    )
    new_spec = spec.model_copy(
        update={
            "data": spec.data.model_copy(update={"sources": sources}),
            "generate": spec.generate.model_copy(update={"prompt_sets": prompt_sets}),
            "judge": spec.judge.model_copy(update={"baselines": baselines}),
            "model": model,
            "sweep": _anchor_sweep(spec.sweep, base),
        }
    )
    return experiment.model_copy(update={"spec": new_spec})


def _anchor_sweep(sweep: Any, base: Path) -> Any:
    """A sweep whose variants' patches name local paths next to the file, like the spec does."""
    if sweep is None:
        return None
    variants = [
        v.model_copy(update={"patch": _anchor_patch(v.patch, base)}) for v in sweep.variants
    ]
    return sweep.model_copy(update={"variants": variants})


def _anchor_patch(patch: dict[str, Any], base: Path) -> dict[str, Any]:
    """The path-like fields a merge patch may carry: sources, prompt sets, the base model."""
    patch = copy.deepcopy(patch)
    data, generate = patch.get("data"), patch.get("generate")
    listed = [
        *(data.get("sources") or [] if isinstance(data, dict) else []),
        *(generate.get("prompt_sets") or [] if isinstance(generate, dict) else []),
    ]
    for entry in listed:
        if isinstance(entry, dict) and isinstance(entry.get("uri"), str):
            entry["uri"] = anchor(entry["uri"], base)
    model = patch.get("model")
    if isinstance(model, dict):
        for key in ("base", "tokenizer"):
            if isinstance(model.get(key), str):
                model[key] = anchor_model(model[key], base)
    return patch
