"""What a run found, where a user looks: the selection fallback, a proxy judge and curation's
shortfalls in the operator's Experiment status, the closing summary of `lima run`, the live
display's stage lines and `lima status` (the end-to-end runs are in tests/test_cli_terminal.py)."""

from __future__ import annotations

import io

from lima.cli_progress import PlainEvents
from lima.console.runs import run_view
from lima.console.summary import finding_lines, outcome
from lima.dag import PlannedStage, get
from lima.results import CurateResult, Headline, JudgeResult, SelectResult, StageResult
from lima.runner import StageRun
from lima.store import Manifest

REASON = "judge hf:/j gave too few valid verdicts (epoch 3: 0 of 4 verdicts valid; ...)"
SELECTED = SelectResult(
    selected_epoch=3,
    score=None,
    judge="hf:/j",
    proxy=False,
    epochs=[1, 2, 3],
    fallback="last_epoch",
    fallback_reason=REASON,
)
PROXY_JUDGED = JudgeResult(
    judge="reference:all-MiniLM-L6-v2",
    proxy=True,
    verdicts=8,
    invalid=0,
    headline=Headline(
        prompt_set="test", baseline="base", n=4, win=0.5, tie=0.25, loss=0.25, win_ci=(0.1, 0.9)
    ),
)
CURATED = CurateResult(
    train=60,
    dev=2,
    test=3,
    tokens=1000,
    quota=67,
    shortfalls=["dev: 2 of 40 prompts (the sources have 70 usable rows, 67 of them reserved)"],
    contamination={"dev": 0, "vicuna": 2},
)


def planned(stage: str, result: StageResult) -> PlannedStage:
    """A stage as the operator's plan sees it: a cache hit whose manifest carries the result."""
    manifest = Manifest(
        stage=stage,
        key=f"{stage}-key",
        code_version="1",
        config={},
        inputs=[],
        objects=[],
        started_at="",
        ended_at="",
        duration_s=1.0,
        summary=result.model_dump(mode="json"),
    )
    return PlannedStage(get(stage), manifest.key, manifest)


def test_operator_status_shows_the_selection_fallback_and_the_proxy_judge() -> None:
    from lima_operator.artifacts import headline

    status = headline([planned("select", SELECTED), planned("judge", PROXY_JUDGED)])
    assert status["bestEpoch"] == 3
    assert status["selectionFallback"] == "last_epoch"
    assert status["judgeProxy"] is True  # the judge stage's judge is the proxy
    assert status["winRate"] == "50% win, 25% tie vs base"
    chosen = SELECTED.model_copy(update={"fallback": None, "fallback_reason": None})
    assert "selectionFallback" not in headline([planned("select", chosen)])


def stage_run(stage: str, result: StageResult, status: str = "done") -> StageRun:
    return StageRun(stage, f"{stage}-key", status, summary=result.model_dump(mode="json"))


def test_closing_summary_says_fallback_proxy_and_shortfalls() -> None:
    results = [
        stage_run("curate", CURATED, "cached"),
        stage_run("select", SELECTED),
        stage_run("judge", PROXY_JUDGED),
    ]
    lines = outcome(results, store=None, run_id="r1").lines()
    assert f"selected epoch: 3 (fallback last_epoch: {REASON})" in lines
    assert any(line.startswith("result: win 50% (95% CI 10%-90%)") for line in lines)
    assert any("(proxy judge)" in line for line in lines)
    assert any("reference:all-MiniLM-L6-v2 is the embedded proxy judge" in line for line in lines)
    assert f"curate shortfall: {CURATED.shortfalls[0]}" in lines
    assert "curate: 2 training example(s) removed as overlapping vicuna" in lines
    assert not any("overlapping dev" in line for line in lines)  # nothing removed: no line
    plain = outcome([stage_run("select", SELECTED.model_copy(update={"fallback": None}))], None)
    assert "selected epoch: 3" in plain.lines()  # chosen by score, by a real judge: no note


def test_plain_display_prints_stage_warnings_also_on_a_cache_hit() -> None:
    out = io.StringIO()
    events = PlainEvents(out)
    events.stage_finished(stage_run("curate", CURATED, "cached"))
    events.stage_finished(stage_run("select", SELECTED))
    shown = out.getvalue()
    assert f"curate shortfall: {CURATED.shortfalls[0]}" in shown
    assert "curate: 2 training example(s) removed as overlapping vicuna" in shown
    assert f"select: epoch 3 chosen by fallback last_epoch: {REASON}" in shown


def test_rich_display_prints_stage_warnings() -> None:
    from rich.console import Console

    from lima.cli_progress import RichEvents

    shown = io.StringIO()
    with RichEvents(Console(file=shown, force_terminal=True, width=300)) as events:
        events.stage_finished(stage_run("curate", CURATED, "cached"))
        events.stage_finished(stage_run("select", SELECTED))
    text = shown.getvalue()
    assert "curate shortfall: dev: 2 of 40 prompts" in text
    assert "select: epoch 3 chosen by fallback last_epoch" in text


def test_status_view_reads_the_findings_from_the_run_record() -> None:
    record = {
        "run_id": "r1",
        "experiment": "demo",
        "stages": [
            {"stage": "curate", "key": "c", "status": "cached", "summary": CURATED.model_dump()},
            {"stage": "select", "key": "s", "status": "done", "summary": SELECTED.model_dump()},
            {"stage": "judge", "key": "j", "status": "done", "summary": PROXY_JUDGED.model_dump()},
        ],
    }
    found = run_view(record)["outcome"]
    assert found["selected_epoch"] == 3 and found["selection_fallback"] == "last_epoch"
    assert found["selection_fallback_reason"] == REASON
    assert found["judge_proxy"] is True and found["judge"] == "reference:all-MiniLM-L6-v2"
    assert found["curate_shortfalls"] == CURATED.shortfalls
    assert found["contamination_removed"] == {"dev": 0, "vicuna": 2}
    lines = finding_lines(found)
    assert f"selected epoch: 3 (fallback last_epoch: {REASON})" in lines
    # a failed stage's summary is not a finding
    record["stages"][1]["status"] = "failed"
    assert run_view(record)["outcome"]["selected_epoch"] is None
