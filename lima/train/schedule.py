"""Learning rate per optimizer step: linear from `lr` to `final_lr`, no warm-up (paper)."""

from __future__ import annotations


def linear_lr(
    step: int, total_steps: int, lr: float, final_lr: float, warmup_steps: int = 0
) -> float:
    """LR of optimizer step `step` (0-based): `lr` at step 0 (after warm-up), `final_lr` at the
    last step `total_steps - 1`, linear in between."""
    if warmup_steps and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    span = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    return lr + (final_lr - lr) * progress
