"""Per-step statistics summed over ranks, on a CPU side group that works under any backend.

Ray Train starts an NCCL process group on GPU workers, and NCCL only takes CUDA tensors: an
all-reduce of a CPU tensor there fails with "No backend type associated with device type cpu".
The statistics are a handful of Python floats, so they travel on a gloo group of their own
(`dist.new_group(backend="gloo")`, created once by every rank) instead of being copied to the
accelerator and back each step; DeepSpeed keeps the default group for the gradients.
"""

from __future__ import annotations

from typing import Any


class StatsReducer:
    """`sum(values)`: element-wise sum over all ranks, float64 so token counts stay exact."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self._group: Any = None
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            self._group = dist.new_group(backend="gloo")  # collective: every rank, same order

    def sum(self, values: list[float]) -> list[float]:
        if self._group is None:
            return [float(v) for v in values]
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(tensor, group=self._group)
        return tensor.tolist()
