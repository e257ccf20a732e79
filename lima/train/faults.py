"""Test-only fault injection for the training loop (a killed worker, a NaN loss).

`TrainJob.fault = {"trace": path, "events": [...]}`; production runs leave it None.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any


def maybe_fault(config: dict[str, Any], rank: int, epoch: int, step: int) -> bool:
    """Test hook (`TrainJob.fault = {"trace": path, "events": [...]}`): each event names a rank,
    epoch, step, kind (`kill`: SIGKILL this worker process; `nan`: poison the loss, returns True)
    and a marker file that makes it fire on the first attempt only."""
    for event in (config.get("fault") or {}).get("events", []):
        if (rank, epoch, step) != (event["rank"], event["epoch"], event["step"]):
            continue
        marker = Path(event["marker"])
        if marker.exists():
            continue
        marker.write_text(f"{event['kind']} rank {rank} epoch {epoch} step {step}\n")
        if event["kind"] == "nan":
            return True
        os.kill(os.getpid(), signal.SIGKILL)
    return False


def trace(config: dict[str, Any], rank: int, line: str) -> None:
    path = (config.get("fault") or {}).get("trace")
    if path and rank == 0:
        with open(path, "a") as handle:
            handle.write(line + "\n")
        with open(path + ".times", "a") as handle:
            handle.write(f"{time.time():.2f} {line}\n")
