"""The closing lines of `lima run`: what the run found, not only how long it took.

Read from the typed stage results (lima.results) that the runner returns: the epoch `select`
kept, the headline win/tie/loss of `judge` with its confidence interval, and where the report is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from lima.results import JudgeResult, SelectResult


@dataclass
class Outcome:
    run_id: str | None
    selected_epoch: int | None
    headline: str | None
    proxy_judge: bool
    report: str | None
    cache_hits: int
    stages: int
    duration_s: float
    failed: list[str]

    def lines(self) -> list[str]:
        """Plain sentences; the CLI styles them."""
        out = []
        if self.selected_epoch is not None:
            out.append(f"selected epoch: {self.selected_epoch}")
        if self.headline:
            out.append(f"result: {self.headline}" + (" (proxy judge)" if self.proxy_judge else ""))
        if self.report:
            out.append(f"report: {self.report}")
        out.append(
            f"{self.cache_hits}/{self.stages} cache hits, {self.duration_s:.1f}s"
            + (f", run {self.run_id}" if self.run_id else "")
        )
        return out


def _typed(model: type[BaseModel], summary: dict[str, Any] | None) -> Any:
    if not summary:
        return None
    try:
        return model.model_validate(summary)
    except ValidationError:
        return None  # an artifact from an older layout: show what we can


def headline_text(judge: JudgeResult | None) -> str | None:
    if judge is None or judge.headline is None:
        return None
    h = judge.headline
    if h.win is None or h.tie is None or h.loss is None:
        return f"no valid verdicts vs {h.baseline} ({h.prompt_set}, n={h.n})"
    low, high = h.win_ci
    ci = f" (95% CI {low:.0%}-{high:.0%})" if low is not None and high is not None else ""
    return (
        f"win {h.win:.0%}{ci} / tie {h.tie:.0%} / loss {h.loss:.0%} "
        f"vs {h.baseline} on {h.prompt_set} (n={h.n})"
    )


def outcome(results: Sequence[Any], store: Any, run_id: str | None = None) -> Outcome:
    by_stage = {r.stage: r for r in results}
    select = _typed(SelectResult, getattr(by_stage.get("select"), "summary", None))
    judge = _typed(JudgeResult, getattr(by_stage.get("judge"), "summary", None))
    return Outcome(
        run_id=run_id,
        selected_epoch=select.selected_epoch if select else None,
        headline=headline_text(judge),
        proxy_judge=bool(judge and judge.proxy),
        report=_report_path(store, by_stage.get("report")),
        cache_hits=sum(r.status == "cached" for r in results),
        stages=len(results),
        duration_s=sum(r.duration_s for r in results),
        failed=[r.stage for r in results if r.status == "failed"],
    )


def _report_path(store: Any, result: Any) -> str | None:
    if result is None or result.status not in ("done", "cached") or not result.key:
        return None
    from lima.report import locate_in_run

    entry = {"stage": "report", "status": result.status, "key": result.key}
    try:
        return locate_in_run(store, {"stages": [entry]})
    except Exception:  # the summary must never turn a finished run into a crash
        return None
