"""The curate stage: LIMA's ~1,000 examples from the experiment's sources (spec.data)."""

from __future__ import annotations

from typing import Any

from lima.spec import Experiment
from lima.stages.base import Stage, StageContext


def config(experiment: Experiment) -> dict[str, Any]:
    # Token counts use a fixed tokenizer (lima.curate.tokens), not the model's, so the model
    # section does not enter the key.
    return {"data": experiment.spec.data.model_dump(mode="json"), "tokenizer": "minilm-wordpiece"}


def run(ctx: StageContext) -> dict[str, Any]:
    from lima.curate.run import curate

    resources = ctx.resources
    report = curate(
        ctx.spec.data,
        ctx.output_dir,
        settings=ctx.settings,
        scratch=ctx.scratch_dir / "curate",
        workers=resources.workers,
        cpus=resources.cpus,
        progress=ctx.progress,
    )
    return {**report["totals"], "shortfalls": report["shortfalls"]}


STAGE = Stage(
    name="curate",
    version="1",
    inputs=(),
    config=config,
    run=run,
    description="read sources, apply LIMA's filters, dedup, decontaminate, select, split",
)
