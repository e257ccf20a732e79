"""Where a training worker runs: inside Ray Train (the train stage), or in a process group
started some other way (torchrun, a single process: the GPU check and the tests).

Both report an epoch the same way: the rank's checkpoint folder ends up in the run folder
`<run>/epoch-NNN/`, merged with the other ranks' files (`lima.train.layout`).
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

    def report(self, folder: Path, epoch: int, metrics: dict[str, Any]) -> None:
        """Upload this rank's checkpoint folder of `epoch` (collective: every rank calls it)."""


class RaySession:
    """Ray Train: checkpoints are uploaded and registered by `ray.train.report`."""

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

    def report(self, folder: Path, epoch: int, metrics: dict[str, Any]) -> None:
        import ray.train
        from ray.train import Checkpoint

        ray.train.report(
            metrics,
            checkpoint=Checkpoint.from_directory(str(folder)),
            checkpoint_dir_name=layout.tag(epoch),
        )


class ProcessGroupSession:
    """An already initialised torch.distributed group (or none: one process). Each rank copies
    its files into the run folder, then all wait so rank 0 sees every done marker."""

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

    def report(self, folder: Path, epoch: int, metrics: dict[str, Any]) -> None:
        import pyarrow.fs as pafs

        fs, dest = self.storage.filesystem, f"{self.storage.path}/{layout.tag(epoch)}"
        fs.create_dir(dest, recursive=True)
        pafs.copy_files(
            str(folder), dest, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs
        )
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()
