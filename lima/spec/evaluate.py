"""`spec.generate` and `spec.judge`: answering held-out prompts and judging them as LIMA did."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from lima.spec.base import SpecModel
from lima.spec.data import DNS_LABEL


class PromptSet(SpecModel):
    """A set of prompts to answer."""

    name: str = Field(pattern=DNS_LABEL, max_length=40)
    """Name used in outputs and the report."""

    uri: str = Field(default="curated:test", min_length=1)
    """`curated:dev` / `curated:test` (the curate stage's splits), or a path / s3:// URI of
    JSONL (`{"id", "prompt"}` or LIMA conversations) or MT-Bench / Vicuna `question.jsonl`."""

    limit: int | None = Field(default=None, ge=1)
    """Answer only the first N prompts."""


class GenerateSpec(SpecModel):
    """Decoding settings (paper Section 4: nucleus sampling p = 0.9, temperature 0.7,
    repetition penalty 1.2 on previously generated tokens, at most 2048 tokens)."""

    top_p: float = Field(default=0.9, gt=0, le=1)
    """Nucleus sampling mass (paper: 0.9)."""

    temperature: float = Field(default=0.7, gt=0)
    """Sampling temperature (paper: 0.7)."""

    repetition_penalty: float = Field(default=1.2, ge=1)
    """Penalty on previously generated tokens (paper: 1.2). The `hf` engine penalises only the
    tokens generated so far, as the paper states, not the prompt (HF's own processor would
    penalise both); the `vllm` engine's penalty also covers the prompt."""

    max_new_tokens: int = Field(default=2048, ge=1, le=131_072)
    """Longest answer in tokens (paper: 2048; at most 131,072, beyond any model's context)."""

    batch_size: int = Field(default=8, ge=1)
    """Prompts per generation batch on each replica (sorted by length, left-padded)."""

    engine: Literal["hf", "vllm"] = "hf"
    """`hf` (transformers, CPU or GPU) or `vllm` (GPUs only)."""

    prompt_sets: list[PromptSet] = Field(
        default_factory=lambda: [PromptSet(name="test", uri="curated:test")]
    )
    """What to answer with the selected checkpoint."""

    seed: int = 0
    """Sampling seed; each prompt (and turn) draws from its own generator seeded with a hash of
    (seed, prompt id, turn), so a re-run reproduces the answers at any batch size."""


class JudgeBackend(StrEnum):
    reference = "reference"
    openai = "openai"
    hf = "hf"


class Protocol(StrEnum):
    pairwise = "pairwise"
    absolute = "absolute"
    likert = "likert"
    safety = "safety"
    single = "single"


PROMPT_SET_PROTOCOLS = {
    "lima": ("pairwise", "absolute", "likert", "safety"),
    "mt-bench": ("pairwise", "single"),
}
"""Which questions each judge prompt set asks (lima/judging/prompts: one source, mirrored here so
the spec stays free of the judging package; a test checks they agree)."""

DEFAULT_PROTOCOLS = {"lima": ("pairwise", "absolute", "likert"), "mt-bench": ("pairwise", "single")}

REAL_JUDGE_HOWTO = (
    "set `spec.judge.backend: openai` (an OpenAI-compatible endpoint: LIMA_JUDGE_BASE_URL, and "
    "`spec.judge.model` or LIMA_JUDGE_MODEL) or `spec.judge.backend: hf` with `spec.judge.model` "
    "naming a local folder or Hugging Face id of a judge model; `backend: reference` is a "
    "similarity proxy for smoke tests, allowed for a real model only with "
    "`spec.judge.allow_proxy: true` (see docs/judging.md)"
)


class Baseline(SpecModel):
    """A system LIMA's answers are compared with."""

    name: str = Field(pattern=DNS_LABEL, max_length=40)
    answers: str | None = None
    """JSONL of answers (`{"id", "answer"}`) by another system, as a path or s3:// URI."""

    model: str | None = None
    """Or a model (same forms as `spec.model.base`) whose answers are generated in this run."""

    prompt_format: Literal["native", "lima"] = "native"
    """How a `model` baseline is prompted: `native` uses the model's own chat template (an
    instruct model answers in the format it was tuned on), or, for a base model without one,
    lima-run's plain completion format; `lima` uses the fine-tuned model's format with EOT (the
    chat tokens added to its vocabulary). Recorded with every answer (docs/evaluation.md)."""

    @model_validator(mode="after")
    def _one_origin(self) -> Baseline:
        if (self.answers is None) == (self.model is None):
            raise ValueError("a baseline needs exactly one of `answers` or `model`")
        if self.answers is not None and "prompt_format" in self.model_fields_set:
            raise ValueError("`prompt_format` applies to a `model` baseline, not to `answers`")
        return self


class JudgeSpec(SpecModel):
    """How answers are judged (paper Section 4 and Appendix)."""

    backend: JudgeBackend | None = None
    """`openai` (any OpenAI-compatible chat endpoint, set with LIMA_JUDGE_* settings), `hf` (a
    local Hugging Face judge model), or `reference` (embedded PROXY: similarity to reference
    answers with all-MiniLM-L6-v2; a smoke test, not a judge of quality). Must be set, except
    with the `tiny` demo model, where it defaults to `reference`; `reference` with a real model
    needs `allow_proxy: true`."""

    allow_proxy: bool = False
    """Accept the `reference` proxy judge for a real (non-`tiny`) model: its numbers are then
    marked as a proxy in the report, the status and the selection evidence."""

    prompts: Literal["lima", "mt-bench"] = "lima"
    """Judge prompt set: `lima` (the paper's pairwise question, Fail/Pass/Excellent, the
    Appendix 1-6 helpfulness rubric, safety) or `mt-bench` (FastChat's pair and single 1-10
    prompts with multi-turn and reference forms). The reference judge uses no prompts."""

    model: str | None = None
    """Judge model name (openai) or location (hf)."""

    protocols: list[Protocol] | None = None
    """Which questions to ask: pairwise (both orders), absolute Fail/Pass/Excellent, 1-6 Likert,
    safety (`lima` prompts), single 1-10 (`mt-bench` prompts). Default: pairwise, absolute and
    likert with `lima`; pairwise and single with `mt-bench`."""

    baselines: list[Baseline] = Field(default_factory=list)
    """Systems compared pairwise with the fine-tuned model."""

    concurrency: int = Field(default=32, ge=1)
    """Requests in flight to the judge endpoint."""

    timeout_s: float = Field(default=120.0, gt=0)
    """Per-request timeout."""

    max_retries: int = Field(default=5, ge=0)
    """Retries with backoff on 429/5xx/timeouts."""

    backoff_s: float = Field(default=0.5, gt=0)
    """First retry delay; doubles per retry (capped at 30 s) with full jitter, unless the
    endpoint's `Retry-After` header asks for longer (common client practice, not from the paper)."""

    max_tokens: int = Field(default=1024, ge=1)
    """Longest judge reply in tokens (room for a short rationale before the verdict line)."""

    reference_margin: float = Field(default=0.05, ge=0, le=1)
    """Reference judge only: score gap below which pairwise says "neither" (lima-run's choice;
    the proxy has no paper value)."""

    bootstrap_resamples: int = Field(default=1000, ge=100, le=100_000)
    """Bootstrap resamples over prompts for the 95% confidence intervals (at most 100,000: the
    intervals' Monte Carlo error is already far below the sampling error)."""

    selection_prompts: int = Field(default=50, ge=1)
    """Dev prompts judged per eligible epoch to pick the checkpoint (paper: 50)."""

    selection_min_valid: float = Field(default=0.5, gt=0, le=1)
    """Least share of valid verdicts every compared epoch needs; below it the select stage
    refuses to choose (naming the judge and the invalid counts) unless `selection_fallback`
    is set."""

    selection_fallback: Literal["last_epoch", "lowest_dev_perplexity"] | None = None
    """What select does when the judged evidence is too thin: fail (unset, the default), take
    the last eligible epoch, or the epoch with the lowest dev perplexity. A fallback is
    recorded in the selection evidence, the report and the Experiment status."""

    seed: int = 0

    @model_validator(mode="after")
    def _protocols_in_prompt_set(self) -> JudgeSpec:
        if self.protocols is None:
            self.protocols = [Protocol(p) for p in DEFAULT_PROTOCOLS[self.prompts]]
        offered = PROMPT_SET_PROTOCOLS[self.prompts]
        if self.backend == JudgeBackend.reference:
            offered = PROMPT_SET_PROTOCOLS["lima"]  # the proxy scores the lima questions
        wrong = [p.value for p in self.protocols if p.value not in offered]
        if wrong:
            which = (
                "the reference judge"
                if self.backend == JudgeBackend.reference
                else (f"prompt set `{self.prompts}`")
            )
            raise ValueError(
                f"protocols {wrong} are not asked by {which}; it asks: {', '.join(offered)}"
            )
        return self


def resolve_judge_backend(judge: JudgeSpec, model_base: str) -> JudgeSpec:
    """Fill in or refuse the judge backend for the model being trained.

    The `tiny` preset is a random-init demo model: with no backend it gets the `reference`
    proxy. A real model must name a real judge (or accept the proxy with `allow_proxy`), so a
    run never reports proxy numbers as if they were judgments of quality by default.
    """
    demo = model_base == "tiny"
    if judge.backend is None:
        if not demo:
            raise ValueError(
                f"spec.judge.backend is not set and spec.model.base is {model_base!r}, a real "
                f"model: {REAL_JUDGE_HOWTO}"
            )
        judge.backend = JudgeBackend.reference
    elif judge.backend == JudgeBackend.reference and not demo and not judge.allow_proxy:
        raise ValueError(
            f"spec.judge.backend is `reference` (a proxy) but spec.model.base is {model_base!r}, "
            f"a real model: {REAL_JUDGE_HOWTO}"
        )
    return judge
