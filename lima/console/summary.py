"""The closing lines of `lima run`: what the run found, not only how long it took.

Read from the typed stage results (lima.results) that the runner returns: the epoch `select`
kept (and the fallback rule, when it chose without enough valid verdicts), the headline
win/tie/loss of `judge` with its confidence interval, whether the judge is the proxy, curation's
shortfalls and contamination removals, and where the report is. `lima status` shows the same
findings from a run record (`findings`), and the live display prints a stage's warnings as it
finishes (`stage_warnings`): during a run the library's own log lines go to the log file only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from lima.results import CurateResult, JudgeResult, SelectResult


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
    selection_fallback: str | None = None
    fallback_reason: str | None = None
    judge: str | None = None
    warnings: list[str] = field(default_factory=list)
    """Curation's shortfalls and contamination removals (`stage_warnings`)."""

    def lines(self) -> list[str]:
        """Plain sentences; the CLI styles them."""
        out = list(self.warnings)
        if self.selected_epoch is not None:
            out.append(
                f"selected epoch: {self.selected_epoch}"
                + selection_note(self.selection_fallback, self.fallback_reason, self.proxy_judge)
            )
        if self.headline:
            out.append(f"result: {self.headline}" + (" (proxy judge)" if self.proxy_judge else ""))
        if self.proxy_judge:
            out.append(PROXY_NOTE.format(judge=self.judge or "reference"))
        if self.report:
            out.append(f"report: {self.report}")
        out.append(
            f"{self.cache_hits}/{self.stages} cache hits, {self.duration_s:.1f}s"
            + (f", run {self.run_id}" if self.run_id else "")
        )
        return out


PROXY_NOTE = (
    "judge: {judge} is the embedded proxy judge (a smoke test, not an evaluator); "
    "set a real judge for numbers to trust (docs/judging.md)"
)


def selection_note(fallback: str | None, reason: str | None, proxy: bool) -> str:
    """` (fallback last_epoch: <why>)`, ` (chosen by the proxy judge)` or nothing."""
    if fallback:
        return f" (fallback {fallback}: {reason or 'too few valid verdicts'})"
    return " (chosen by the proxy judge)" if proxy else ""


def stage_warnings(stage: str, summary: dict[str, Any] | None) -> list[str]:
    """What a finished (or cached) stage's result says a user must not miss: curation's
    shortfalls and contamination removals, a checkpoint chosen by a fallback rule."""
    if stage == "curate":
        curate = _typed(CurateResult, summary)
        if curate is None:
            return []
        return _curate_lines(curate.shortfalls, curate.contamination)
    if stage == "select":
        select = _typed(SelectResult, summary)
        if select is not None and select.fallback:
            return [
                f"select: epoch {select.selected_epoch} chosen by fallback {select.fallback}: "
                f"{select.fallback_reason or 'too few valid verdicts'}"
            ]
    return []


def _curate_lines(shortfalls: list[str], contamination: dict[str, Any]) -> list[str]:
    lines = [f"curate shortfall: {line}" for line in shortfalls]
    lines += [
        f"curate: {removed} training example(s) removed as overlapping {name}"
        for name, removed in contamination.items()
        if removed
    ]
    return lines


def findings(summaries: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """What a run found, from its stages' results (stage name -> summary): the `outcome` of
    `lima status --output json`."""
    select = _typed(SelectResult, summaries.get("select"))
    judge = _typed(JudgeResult, summaries.get("judge"))
    curate = _typed(CurateResult, summaries.get("curate"))
    proxy = judge.proxy if judge else (select.proxy if select else None)
    return {
        "selected_epoch": select.selected_epoch if select else None,
        "selection_fallback": select.fallback if select else None,
        "selection_fallback_reason": select.fallback_reason if select else None,
        "judge": judge.judge if judge else (select.judge if select else None),
        "judge_proxy": proxy,
        "headline": headline_text(judge),
        "curate_shortfalls": list(curate.shortfalls) if curate else [],
        "contamination_removed": dict(curate.contamination) if curate else {},
    }


def finding_lines(found: dict[str, Any]) -> list[str]:
    """`findings` as the sentences `lima status EXPERIMENT` prints under its table."""
    proxy = bool(found.get("judge_proxy"))
    lines = _curate_lines(
        found.get("curate_shortfalls", []), found.get("contamination_removed", {})
    )
    if found.get("selected_epoch") is not None:
        lines.append(
            f"selected epoch: {found['selected_epoch']}"
            + selection_note(
                found.get("selection_fallback"), found.get("selection_fallback_reason"), proxy
            )
        )
    if found.get("headline"):
        lines.append(f"result: {found['headline']}" + (" (proxy judge)" if proxy else ""))
    if proxy:
        lines.append(PROXY_NOTE.format(judge=found.get("judge") or "reference"))
    return lines


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
    found = findings({r.stage: r.summary for r in results})
    return Outcome(
        run_id=run_id,
        selected_epoch=found["selected_epoch"],
        headline=found["headline"],
        proxy_judge=bool(found["judge_proxy"]),
        report=_report_path(store, by_stage.get("report")),
        cache_hits=sum(r.status == "cached" for r in results),
        stages=len(results),
        duration_s=sum(r.duration_s for r in results),
        failed=[r.stage for r in results if r.status == "failed"],
        selection_fallback=found["selection_fallback"],
        fallback_reason=found["selection_fallback_reason"],
        judge=found["judge"],
        warnings=stage_warnings("curate", getattr(by_stage.get("curate"), "summary", None)),
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
