"""Helpers shared by the select, generate and judge stages (model refs, progress).

What enters their artifact keys (`decode_config`, `judge_config`) lives in lima.dag.
"""

from __future__ import annotations

from typing import Any

from lima.generation.pool import ModelRef
from lima.stages.base import StageContext


def generation_resources(ctx: StageContext) -> Any:
    """Replicas, CPUs and GPUs for generating: `resources.<stage>` when the spec has a section
    for this stage (e.g. `select`), else `resources.generate` (same model, same needs)."""
    own = getattr(ctx.spec.resources, ctx.stage, None)
    return own if own is not None else ctx.spec.resources.generate


def epoch_ref(ctx: StageContext, epoch: int, folder: str) -> ModelRef:
    """How a replica reaches a train artifact epoch model: local copy, or fetched from the store."""
    manifest = ctx.inputs["train"]
    paths = [o.path for o in manifest.objects if o.path.startswith(folder + "/")]
    local = ctx.input_dir("train", paths) / folder
    return ModelRef(f"epoch-{epoch}", str(local), manifest.to_json(), folder)


def by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in records}


def progress_note(ctx: StageContext, note: str) -> Any:
    def report(done: int, total: int) -> None:
        ctx.progress(completed=done, total=total, note=note)

    return report
