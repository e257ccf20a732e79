"""`spec.train`: LIMA's fine-tuning recipe (paper Section 3, "Training LIMA")."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lima.spec.base import SpecModel


class TrainSpec(SpecModel):
    """Fine-tuning hyper-parameters. Every default is the paper's value; the two values the paper
    gives per model size (batch size, residual dropout) come from the size preset when unset
    (`lima.train.recipe`: 32 / 0.3 for the 65B-class, 64 / 0.2 for smaller models)."""

    epochs: int = Field(default=15, ge=1, le=1000)
    """Passes over the training set (paper: 15)."""

    lr: float = Field(default=1e-5, gt=0)
    """Initial learning rate (paper: 1e-5)."""

    final_lr: float = Field(default=1e-6, ge=0)
    """Learning rate at the last step; the decay is linear (paper: 1e-6)."""

    warmup_steps: int = Field(default=0, ge=0, le=10_000_000)
    """Warm-up steps (paper: none)."""

    adam_beta1: float = Field(default=0.9, gt=0, lt=1)
    """AdamW beta1 (paper: 0.9)."""

    adam_beta2: float = Field(default=0.95, gt=0, lt=1)
    """AdamW beta2 (paper: 0.95)."""

    weight_decay: float = Field(default=0.1, ge=0)
    """AdamW weight decay (paper: 0.1)."""

    global_batch_size: int | None = Field(default=None, ge=1, le=1_000_000)
    """Examples per optimizer step = micro_batch_size x gradient accumulation x workers.
    Unset: the paper's value for the base's size (32 for the 65B-class, 64 for smaller models)."""

    micro_batch_size: int = Field(default=1, ge=1, le=65_536)
    """Examples per worker per forward pass; gradient accumulation is derived."""

    context_length: int = Field(default=2048, ge=16, le=1_048_576)
    """Texts longer than this are trimmed (paper: 2048 tokens)."""

    residual_dropout: float | None = Field(default=None, ge=0, lt=1)
    """Dropout on the residual branches of the top layer, rising linearly from 0 at the bottom.
    Unset: the paper's value for the base's size (0.3 for the 65B-class, 0.2 for smaller)."""

    grad_clip: float = Field(default=1.0, gt=0)
    """Gradient norm clipping."""

    zero_stage: Literal[2, 3] = 3
    """DeepSpeed ZeRO stage."""

    offload_optimizer: bool = False
    """Keep optimizer state in CPU memory (DeepSpeed ZeRO-Offload)."""

    group_by_length: bool = True
    """Micro-batches of examples of similar length so padding stays small (false: random
    micro-batches). Examples are never packed into one row: they never attend to each other."""

    eligible_epochs: list[int] = Field(default_factory=lambda: [5, 6, 7, 8, 9, 10])
    """Epochs whose consolidated model is kept for dev-set selection (paper: "between the 5th
    and the 10th epochs")."""

    keep_full_states: int = Field(default=2, ge=1)
    """Newest epochs whose full training state (weights + optimizer shards) stays in storage for
    resuming; older ones keep only their metrics and, when eligible, their exported model."""

    max_failures: int = Field(default=2, ge=0, le=100)
    """Worker failures tolerated; each one resumes from the latest epoch checkpoint."""

    max_examples: int | None = Field(default=None, ge=1, le=1_000_000_000)
    """Train on at most this many of curate's training conversations: a random subset of the
    whole pool drawn with `seed` (shuffled once, then a prefix, so for one seed and pool the
    8-example subset lies inside the 16-example one). Unset: every curated training conversation.
    A sweep over it curates once (LIMA's quantity ablation, paper Section 5 / Figure 6); more
    than the pool holds trains on the whole pool, with a warning."""

    seed: int = 0
    """Seeds the batch order, the dropout masks and the `max_examples` subset."""

    @model_validator(mode="after")
    def _consistent(self) -> TrainSpec:
        if self.final_lr > self.lr:
            raise ValueError(f"final_lr ({self.final_lr}) must be <= lr ({self.lr})")
        bad = [e for e in self.eligible_epochs if not 1 <= e <= self.epochs]
        if bad:
            raise ValueError(f"eligible_epochs {bad} are outside 1..epochs ({self.epochs})")
        return self
