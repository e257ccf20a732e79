"""Running shard functions on Ray Data, results streamed back in shard order."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from typing import Any


def run_shards(
    fn: Callable[..., dict[str, Any]],
    shards: list[dict[str, Any]],
    fn_kwargs: dict[str, Any],
    workers: int,
    cpus: float,
) -> Iterator[Any]:
    """Unpickled payloads of `fn(shard, **fn_kwargs)`, one per shard, in shard order.

    Ray Data schedules the tasks (at most `workers` at a time, `cpus` each) on whatever cluster
    `ray.init` joined, so a laptop run and a RayJob run the same code.
    """
    if not shards:
        return
    import ray.data

    context = ray.data.DataContext.get_current()
    saved = (context.execution_options.preserve_order, context.enable_progress_bars)
    context.execution_options.preserve_order = True  # deterministic output for a given seed
    context.enable_progress_bars = False
    try:
        dataset = ray.data.from_items(
            [dict(shard) for shard in shards], override_num_blocks=len(shards)
        )
        compute = ray.data.TaskPoolStrategy(size=max(1, workers))
        mapped = dataset.map(fn, fn_kwargs=fn_kwargs, compute=compute, num_cpus=cpus)
        for row in mapped.iter_rows():
            yield pickle.loads(row["payload"])
    finally:
        context.execution_options.preserve_order, context.enable_progress_bars = saved
