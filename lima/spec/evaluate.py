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

    max_new_tokens: int = Field(default=2048, ge=1)
    """Longest answer in tokens (paper: 2048)."""

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


class Baseline(SpecModel):
    """A system LIMA's answers are compared with."""

    name: str = Field(pattern=DNS_LABEL, max_length=40)
    answers: str | None = None
    """JSONL of answers (`{"id", "answer"}`) by another system, as a path or s3:// URI."""

    model: str | None = None
    """Or a model (same forms as `spec.model.base`) whose answers are generated in this run."""

    @model_validator(mode="after")
    def _one_origin(self) -> Baseline:
        if (self.answers is None) == (self.model is None):
            raise ValueError("a baseline needs exactly one of `answers` or `model`")
        return self


class JudgeSpec(SpecModel):
    """How answers are judged (paper Section 4 and Appendix)."""

    backend: JudgeBackend = JudgeBackend.reference
    """`reference` (embedded proxy: similarity to reference answers with all-MiniLM-L6-v2),
    `openai` (any OpenAI-compatible chat endpoint, set with LIMA_JUDGE_* settings), or `hf`
    (a local Hugging Face model)."""

    model: str | None = None
    """Judge model name (openai) or location (hf)."""

    protocols: list[Protocol] = Field(
        default_factory=lambda: [Protocol.pairwise, Protocol.absolute, Protocol.likert]
    )
    """Which questions to ask: pairwise (both orders), absolute Fail/Pass/Excellent, 1-6 Likert,
    safety."""

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

    bootstrap_resamples: int = Field(default=1000, ge=100)
    """Bootstrap resamples over prompts for the 95% confidence intervals."""

    selection_prompts: int = Field(default=50, ge=1)
    """Dev prompts judged per eligible epoch to pick the checkpoint (paper: 50)."""

    seed: int = 0
