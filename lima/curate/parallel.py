"""Running shard functions as Ray tasks, results streamed back in shard order.

Plain Ray tasks rather than a Ray Data pipeline: a curation run is two maps over a few dozen
shards whose results are already compact (pickled, rejections serialised to text), so Ray Data's
planning, block conversion and streaming executor only added fixed cost (seconds per map on a
loaded 2-core VM) and nothing the driver used. At most `workers` tasks run at once; results are
yielded in shard order (deterministic output for a given seed) while later shards keep running.
"""

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

    The tasks run on whatever cluster `ray.init` joined, so a laptop run and a RayJob run the
    same code; `cpus` is each task's CPU request.
    """
    if not shards:
        return
    import ray

    task = ray.remote(num_cpus=cpus, max_retries=1)(fn)
    kwargs = {name: ray.put(value) for name, value in fn_kwargs.items()}
    limit = max(1, workers)
    submitted: dict[int, Any] = {}
    done: dict[int, Any] = {}
    next_submit = next_yield = 0
    while next_yield < len(shards):
        while next_submit < len(shards) and len(submitted) < limit:
            submitted[next_submit] = task.remote(shards[next_submit], **kwargs)
            next_submit += 1
        if next_yield not in done:
            ready, _ = ray.wait(list(submitted.values()), num_returns=1)
            index = next(i for i, ref in submitted.items() if ref == ready[0])
            done[index] = submitted.pop(index)
            continue
        yield pickle.loads(ray.get(done.pop(next_yield))["payload"])
        next_yield += 1
