"""What each stage reports when it finishes: typed, small, and read by everyone downstream.

A stage's `run` returns one of these models; the runner validates it and stores it as the
artifact manifest's `summary`. The CLI's closing summary, `lima status`, the sweep comparison
(train's row counts) and the operator's Experiment status (the `Best-Epoch` and `Win-Rate`
columns of `kubectl get experiments`) read it back through `read_result`, so a field renamed here
breaks loudly in tests instead of leaving a column blank on a cluster.

Only numbers and names belong here: the full evidence (selection.json, results.json,
verdicts.jsonl, stats.json, ...) lives in the artifact's files. The HTML reports (the report
stage and the sweep comparison) read those evidence files by design: they show every verdict,
curve and per-epoch score, which a summary in the manifest is too small to hold.

A result is kept in the manifest beside the artifact and never enters its digest (the hash of
its files), so downstream keys cannot depend on it; run facts such as throughput may therefore
live here, and must never be written into the stage's files.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class StageResult(BaseModel):
    """Base of every stage result: unknown fields are refused, so producers and readers agree."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CurateResult(StageResult):
    train: int = Field(description="conversations in train.jsonl")
    dev: int = Field(description="prompts in dev.jsonl (checkpoint selection)")
    test: int = Field(description="prompts in test.jsonl (held out)")
    tokens: int = Field(description="tokens in the training set (curation tokenizer)")
    token_budget: int | None = None
    quota: int = Field(description="sum of the sources' quotas")
    rejected_rows: int = 0
    shortfalls: list[str] = Field(default_factory=list)
    contamination: dict[str, Any] = Field(
        default_factory=dict, description="training items removed per held-out/evaluation set"
    )


class TrainResult(StageResult):
    epochs: int
    final_loss: float | None = None
    dev_perplexity: float | None = None
    non_padding_fraction: float
    truncated: int
    rejected_rows: int = 0
    train_rows: int | None = Field(
        default=None, description="training conversations used (after train.max_examples)"
    )
    pool_rows: int | None = Field(
        default=None, description="usable training conversations curate provided"
    )
    models: list[str] = Field(description="exported epoch folders in the artifact")
    global_batch_size: int | None = Field(
        default=None, description="batch size used (the size preset's unless set)"
    )
    residual_dropout: float | None = Field(
        default=None, description="top-layer residual dropout used (size preset's unless set)"
    )


class SelectResult(StageResult):
    selected_epoch: int
    score: float | None = Field(description="(win + tie/2) / n against the reference epoch")
    judge: str
    proxy: bool = Field(description="the judge is a stand-in (demo), not a real evaluator")
    epochs: list[int]
    fallback: str | None = Field(
        default=None, description="set when the epoch was chosen without enough valid verdicts"
    )
    fallback_reason: str | None = Field(
        default=None, description="why the fallback was needed (the judge and its valid counts)"
    )


class GenerateResult(StageResult):
    selected_epoch: int
    sets: dict[str, int] = Field(description="prompts answered per prompt set")
    throughput: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="per model: answers, answer_tokens, generate_s, tokens_per_s. Wall-clock, "
        "so kept here in the run record and out of the hashed answer files (the manifest "
        "summary is not part of the artifact digest)",
    )


class Headline(StageResult):
    """The first pairwise comparison: the fine-tuned model against the first baseline."""

    prompt_set: str
    baseline: str
    n: int
    win: float | None
    tie: float | None
    loss: float | None
    win_ci: tuple[float | None, float | None] = (None, None)

    def column(self) -> str:
        """`kubectl get experiments`' Win-Rate column: short enough for a terminal."""
        if self.win is None or self.tie is None:
            return f"n/a vs {self.baseline}"
        return f"{self.win:.0%} win, {self.tie:.0%} tie vs {self.baseline}"


class JudgeResult(StageResult):
    judge: str
    proxy: bool
    verdicts: int
    invalid: int
    headline: Headline | None = None
    # run facts: how the verdicts were obtained (in no hashed file, so no key depends on them)
    cache_hits: int = 0
    cache_misses: int = 0
    bad_cache_entries: int = Field(
        default=0, description="verdict-cache entries ignored as corrupt and asked again"
    )


class ReportResult(StageResult):
    figures: list[str]
    proxy: bool


class CompareResult(StageResult):
    """The sweep's comparison (lima.report.compare): not a stage of the graph, a step after it."""

    variants: list[str] = Field(description="the variants compared, in the sweep's order")
