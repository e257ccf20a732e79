"""Fault injection and probes for the training tests, plugged in through the loop's callbacks
(`lima.train.callbacks.LoopCallback`): production code has no test switch.

The classes are pickled by value (`ship_by_value`) so that Ray workers, which cannot import the
tests folder, can run them.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lima.train.callbacks import LoopCallback


def ship_by_value() -> None:
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@dataclass
class Trace(LoopCallback):
    """Rank 0 appends `start N` / `resume after N` lines to a file."""

    path: str

    def _line(self, run: Any, line: str) -> None:
        if run.rank == 0:
            with open(self.path, "a") as handle:
                handle.write(line + "\n")

    def on_train_start(self, run: Any, resumed_after: int | None) -> None:
        if resumed_after is not None:
            self._line(run, f"resume after {resumed_after}")

    def on_epoch_start(self, run: Any, epoch: int) -> None:
        self._line(run, f"start {epoch}")


@dataclass
class Fault(LoopCallback):
    """At (rank, epoch, step) on the first attempt only (a marker file remembers): `kill`
    SIGKILLs the worker process, `nan` turns the loss into NaN, `raise` raises."""

    kind: str
    rank: int
    epoch: int
    step: int
    marker: str

    def on_loss(self, run: Any, epoch: int, step: int, loss: Any) -> Any:
        if (run.rank, epoch, step) != (self.rank, self.epoch, self.step):
            return loss
        if Path(self.marker).exists():
            return loss
        Path(self.marker).write_text(f"{self.kind} rank {run.rank} epoch {epoch} step {step}\n")
        if self.kind == "nan":
            return loss * float("nan")
        if self.kind == "raise":
            raise RuntimeError("injected failure")
        os.kill(os.getpid(), signal.SIGKILL)
        return loss
