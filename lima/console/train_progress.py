"""Live step, loss, tokens/s and ETA of the train stage, for the CLI's progress line.

Rank 0 of the training loop writes a small beacon file (at most every `every_s` seconds) through
a LoopCallback; the stage's driver thread polls it and turns it into ProgressSink calls. A file,
not a Ray actor: the local workers share the driver's disk, and on a multi-node cluster (where
nobody watches a terminal) the beacon simply stays on the worker's node.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lima.train.callbacks import LoopCallback


@dataclass
class TrainBeacon(LoopCallback):
    """Writes `{"phase", "epoch", "step", "total_steps", "loss", "tokens_per_s"}` to `path`."""

    path: str
    every_s: float = 1.0
    _last: float = 0.0

    def _write(self, run: Any, **fields: Any) -> None:
        if getattr(run, "rank", 0) != 0:
            return
        now = time.monotonic()
        if fields.get("phase") == "step" and now - self._last < self.every_s:
            return
        self._last = now
        state = {
            "step": getattr(run, "global_step", 0),
            "total_steps": getattr(run, "total_steps", 0),
            **fields,
        }
        target = Path(self.path)
        with contextlib.suppress(OSError):  # progress is best effort; training is not
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".tmp")
            partial.write_text(json.dumps(state))
            os.replace(partial, target)

    def on_train_start(self, run: Any, resumed_after: int | None) -> None:
        self._write(run, phase="started", epoch=(resumed_after or 0) + 1)

    def on_loss(self, run: Any, epoch: int, step: int, loss: Any) -> Any:
        records = [r for r in getattr(run, "records", [])[-1:] if r.get("kind") == "step"]
        if records:
            last = records[0]
            self._write(
                run,
                phase="step",
                epoch=epoch,
                loss=last.get("loss"),
                tokens_per_s=last.get("tokens_per_s"),
            )
        return loss

    def on_epoch_end(self, run: Any, epoch: int, record: dict[str, Any]) -> None:
        self._write(run, phase="epoch", epoch=epoch, loss=record.get("loss"))


def describe(state: dict[str, Any], epochs: int) -> str:
    """`epoch 2/6, step 40/96, loss 5.12, 1,950 tok/s` (the Rate adds the ETA)."""
    if state.get("phase") == "started":
        return f"workers ready, epoch {state.get('epoch', 1)}/{epochs}"
    parts = [f"epoch {state.get('epoch', '?')}/{epochs}"]
    if state.get("total_steps"):
        parts.append(f"step {state.get('step', 0)}/{state['total_steps']}")
    if state.get("loss") is not None:
        parts.append(f"loss {state['loss']:.3f}")
    if state.get("tokens_per_s"):
        parts.append(f"{state['tokens_per_s']:,.0f} tok/s")
    return ", ".join(parts)


@contextlib.contextmanager
def watch(path: Path, progress: Any, epochs: int, every_s: float = 1.0) -> Iterator[None]:
    """While the body runs, forward the beacon at `path` to `progress` (a ProgressSink)."""
    stop = threading.Event()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a beacon left by an earlier attempt would show stale numbers

    def poll() -> None:
        seen: str | None = None
        while not stop.wait(every_s):
            try:
                text = path.read_text()
                state = json.loads(text)
            except (OSError, ValueError):
                continue
            if text == seen:
                continue
            seen = text
            total = state.get("total_steps") or None
            progress(completed=state.get("step"), total=total, note=describe(state, epochs))

    thread = threading.Thread(target=poll, name="lima-train-beacon", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every_s + 1)
