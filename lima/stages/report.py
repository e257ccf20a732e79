"""`report`: the experiment's HTML report with PNG figures, stored as an artifact.

Reads every upstream artifact (curate mix, train metrics, the selection evidence, generation
statistics, judged results) and writes `report.html`, the figures and `report.json` (the
numbers as shown, for tools). `lima report EXPERIMENT` prints the path via
`lima.report.locate`.
"""

from __future__ import annotations

import json

from lima.results import ReportResult
from lima.stages.base import StageContext


def run(ctx: StageContext) -> ReportResult:
    from lima.report.collect import collect
    from lima.report.figures import draw_all
    from lima.report.render import render

    data = collect(ctx)
    figures = draw_all(data, ctx.output_dir)
    render(data, figures, ctx.output_dir)
    (ctx.output_dir / "report.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    return ReportResult(figures=sorted(figures.values()), proxy=data["results"]["proxy"])
