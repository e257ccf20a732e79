"""The curate stage: LIMA's ~1,000 examples from the experiment's sources (spec.data).

What enters its artifact key is `lima.dag.curate_config`.
"""

from __future__ import annotations

from lima.results import CurateResult
from lima.stages.base import StageContext


def run(ctx: StageContext) -> CurateResult:
    from lima.curate.run import curate

    resources = ctx.resources
    from lima.curate.evalsets import effective_data

    report = curate(
        effective_data(ctx.spec),  # spec.data plus the generate stage's prompt sets
        ctx.output_dir,
        settings=ctx.settings,
        scratch=ctx.scratch_dir / "curate",
        workers=resources.workers,
        cpus=resources.cpus,
        progress=ctx.progress,
    )
    removed = {
        name: found["removed"] for name, found in report["contamination"].get("sets", {}).items()
    }
    return CurateResult(**report["totals"], shortfalls=report["shortfalls"], contamination=removed)
