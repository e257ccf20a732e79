"""Where a training worker runs: inside Ray Train (the train stage), or in a process group
started some other way (torchrun, a single process: the GPU check and the tests).

Neither uploads checkpoints: every rank streams its epoch files into the run folder
`<run>/epoch-NNN/` itself (`lima.train.upload`), and a resume scans the run folders in storage
(`lima.train.checkpoint.resume_candidates`). `report` hands the epoch's metrics on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from lima.train import layout
from lima.train.config import RunStorage


class Session(Protocol):
    rank: int
    world: int

    def fetch(self, value: Any) -> Any:
        """The value behind an object ref (or the value itself)."""

    def restored(self) -> tuple[int, str, Any] | None:
        """(epoch, path, filesystem) of the checkpoint the launcher restored, if any."""

    def report(self, epoch: int, metrics: dict[str, Any]) -> None:
        """The metrics of `epoch` (collective: every rank calls it)."""


class RaySession:
    """Ray Train: metrics go to `ray.train.report`; checkpoints are streamed to storage by the
    ranks themselves, so Ray registers none (`restored` is None unless an older run left one)."""

    def __init__(self) -> None:
        import ray.train

        context = ray.train.get_context()
        self.rank, self.world = context.get_world_rank(), context.get_world_size()

    def fetch(self, value: Any) -> Any:
        import ray

        return ray.get(value) if isinstance(value, ray.ObjectRef) else value

    def restored(self) -> tuple[int, str, Any] | None:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if not checkpoint:
            return None
        epoch = layout.tag_epoch(Path(checkpoint.path).name)
        return None if epoch is None else (epoch, checkpoint.path, checkpoint.filesystem)

    def report(self, epoch: int, metrics: dict[str, Any]) -> None:
        import ray.train

        ray.train.report({**metrics, "epoch": epoch})


class ProcessGroupSession:
    """An already initialised torch.distributed group (or none: one process)."""

    def __init__(self, storage: RunStorage) -> None:
        import torch.distributed as dist

        self.storage = storage
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1

    def fetch(self, value: Any) -> Any:
        return value

    def restored(self) -> tuple[int, str, Any] | None:
        return None  # the run folder is scanned for complete checkpoints in any case

    def report(self, epoch: int, metrics: dict[str, Any]) -> None:
        pass  # the metrics travel in the epoch's metrics.jsonl
