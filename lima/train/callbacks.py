"""Hooks into the training loop (like transformers' TrainerCallback), for observers that must
not live in the loop: telemetry, tracing, and the tests' fault injection.

Callbacks travel to the Ray workers with the loop config (pickled), and run on every rank.
"""

from __future__ import annotations

from typing import Any


class LoopCallback:
    """Override what you need; every method is a no-op by default."""

    def on_train_start(self, run: Any, resumed_after: int | None) -> None:
        """After the model is built (and restored: `resumed_after` is the restored epoch)."""

    def on_epoch_start(self, run: Any, epoch: int) -> None:
        """Before the first step of `epoch` (the model is in train mode)."""

    def on_loss(self, run: Any, epoch: int, step: int, loss: Any) -> Any:
        """Each real micro-batch's loss before backward (0-based step within the epoch);
        returns the loss to use."""
        return loss

    def on_epoch_end(self, run: Any, epoch: int, record: dict[str, Any]) -> None:
        """After the epoch's checkpoint was reported."""
