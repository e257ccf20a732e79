"""Running shard functions as Ray tasks, results streamed back in shard order.

Plain Ray tasks rather than a Ray Data pipeline: a curation run is two maps over a few dozen
shards whose results are already compact (pickled, rejections serialised to text), so Ray Data's
planning, block conversion and streaming executor only added fixed cost (seconds per map on a
loaded 2-core VM) and nothing the driver used. At most `workers` tasks run at once, each on a few
consecutive shards; results are yielded in shard order (deterministic output for a given seed)
while later shards keep running. A task's rejected.jsonl lines come back apart from its payload, as
a numpy view of Ray's object store (no copy on the driver, which writes them as they are).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

GROUP_MOST = 4
"""Consecutive shards run together in one Ray task, up to this many: each task costs a round
trip through the driver and the raylet (~15 ms of idle worker and ~4 ms of CPU on the 2-core VM,
measured), a fifth of a pass over 8 MiB shards. Groups shrink towards the end of a pass (guided
scheduling: about a (2 x workers)-th of what is left, `_groups`) so the workers finish together."""


def run_shards(
    fn: Callable[..., dict[str, Any]],
    shards: list[dict[str, Any]],
    fn_kwargs: dict[str, Any],
    workers: int,
    cpus: float,
) -> Iterator[Any]:
    """(unpickled payload, rejection lines) of `fn(shard, **fn_kwargs)`, one per shard, in
    shard order. `fn` returns `{"payload": pickled bytes, "lines": bytes}` ("lines" optional);
    the lines come back as a read-only uint8 array that any binary file's `write` takes.

    The tasks run on whatever cluster `ray.init` joined, so a laptop run and a RayJob run the
    same code; `cpus` is each task's CPU request. Each task runs `fn` on a group of consecutive
    shards (`GROUP_MOST`).
    """
    if not shards:
        return
    import ray

    task = ray.remote(num_cpus=cpus, max_retries=1)(_run_group)
    kwargs = {name: ray.put(value) for name, value in fn_kwargs.items()}
    limit = max(1, workers)
    groups = _groups(len(shards), limit)
    running: dict[Any, int] = {}  # object ref -> group index
    done: dict[int, Any] = {}
    next_submit = next_yield = 0
    while next_yield < len(groups):
        while next_submit < len(groups) and len(running) < limit:
            rows = [shards[i] for i in groups[next_submit]]
            running[task.remote(fn, rows, **kwargs)] = next_submit
            next_submit += 1
        # Every task that finished while the caller handled the previous result frees its slot
        # before the next result is handed over: the workers do not wait for the caller.
        ready, _ = ray.wait(list(running), num_returns=len(running), timeout=0)
        if not ready and next_yield not in done:
            ready, _ = ray.wait(list(running), num_returns=1)
        if ready:
            for ref in ready:
                done[running.pop(ref)] = ref
            continue
        for payload, lines in ray.get(done.pop(next_yield)):
            yield pickle.loads(payload), lines
        next_yield += 1


def _groups(count: int, workers: int) -> list[range]:
    """Shard indices in runs of consecutive ones: at most `GROUP_MOST` each, and about a
    (2 x workers)-th of the shards not yet grouped, so the last tasks are single shards."""
    out, start = [], 0
    while start < count:
        size = min(GROUP_MOST, max(1, -(-(count - start) // (2 * workers))))
        out.append(range(start, start + size))
        start += size
    return out


def _run_group(
    fn: Callable[..., dict[str, Any]], rows: list[dict[str, Any]], **kwargs: Any
) -> list[tuple[bytes, np.ndarray]]:
    """One Ray task: `fn` on each shard of a group, (pickled payload, lines) in shard order.
    Ray stores a numpy array out of band and the driver reads it in place; bytes would be
    copied twice on the driver (Ray's unpickling, then ours): ~0.04 CPU s per 21 MB."""
    out = []
    for row in rows:
        result = fn(row, **kwargs)
        out.append((result["payload"], np.frombuffer(result.get("lines", b""), dtype=np.uint8)))
    return out
