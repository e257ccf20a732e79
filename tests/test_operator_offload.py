"""The operator's store bulkhead (lima_operator.offload) with real threads and blocking calls.

A burst larger than the pool queues and succeeds; a hung endpoint fails fast once every one of
its threads is stuck, while another endpoint keeps answering; a stuck thread that finally
returns frees its slot.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from lima_operator.offload import Offloader, StoreUnavailableError


def slow(seconds: float, value: int) -> int:
    time.sleep(seconds)
    return value


async def test_a_burst_larger_than_the_pool_queues_and_succeeds() -> None:
    offload = Offloader(timeout_s=5, threads=2)
    try:
        results = await asyncio.gather(
            *(offload.run("s3-a", "a lookup", slow, 0.02, n) for n in range(20))
        )
    finally:
        offload.close()
    assert results == list(range(20))


async def test_a_hung_endpoint_fails_fast_and_others_still_answer() -> None:
    release = threading.Event()
    offload = Offloader(timeout_s=0.2, threads=2)
    try:
        for _ in range(2):  # both threads of the hung endpoint get stuck past their deadline
            with pytest.raises(StoreUnavailableError, match="did not answer"):
                await offload.run("hung", "the cache check", release.wait)
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="not attempted"):
            await offload.run("hung", "the cache check", release.wait)
        assert time.monotonic() - started < 0.1  # no new wait on a known-hung endpoint
        assert await offload.run("healthy", "a lookup", slow, 0, 7) == 7
        release.set()  # the stuck calls return: the endpoint is usable again
        for _ in range(50):
            if offload._hung["hung"] == 0:
                break
            await asyncio.sleep(0.02)
        assert await offload.run("hung", "a lookup", slow, 0, 3) == 3
    finally:
        release.set()
        offload.close()


async def test_a_queued_call_past_its_deadline_is_dropped_not_run() -> None:
    release, ran = threading.Event(), []
    offload = Offloader(timeout_s=0.2, threads=1)
    try:
        blocker = asyncio.create_task(offload.run("s3", "first", release.wait))
        await asyncio.sleep(0.05)
        with pytest.raises(StoreUnavailableError):
            await offload.run("s3", "second", ran.append, 1)  # queued behind the blocker
        with pytest.raises(StoreUnavailableError):
            await blocker
        release.set()
        await asyncio.sleep(0.1)
    finally:
        release.set()
        offload.close()
    assert ran == []
