"""Helpers shared by the select, generate and judge stages (configs, model refs, judging)."""

from __future__ import annotations

from typing import Any

from lima.generation.config import DecodeConfig
from lima.generation.pool import ModelRef
from lima.stages.base import StageContext


def decode_config(experiment: Any) -> dict[str, Any]:
    """The decoding part of the spec that determines answers (part of artifact keys)."""
    g = experiment.spec.generate
    return {**DecodeConfig.from_spec(g).to_dict(), "engine": g.engine}


TRANSPORT = {"concurrency", "timeout_s", "max_retries", "backoff_s"}
"""Judge settings that change how verdicts are fetched, not what they are: not part of keys."""


def judge_config(
    experiment: Any, exclude: set[str] | frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The judge settings that determine verdicts (endpoint URL/key are runtime settings)."""
    return experiment.spec.judge.model_dump(mode="json", exclude=TRANSPORT | set(exclude))


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
