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


class SlowStore:
    """An artifact store whose manifest lookups block until released, counting them."""

    def __init__(self, answer: object = None, error: Exception | None = None) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.answer, self.error = answer, error

    def manifest(self, stage: str, key: str) -> object:
        self.calls += 1
        self.release.wait(5)
        if self.error is not None:
            raise self.error
        return self.answer


async def test_concurrent_lookups_of_one_manifest_share_one_request() -> None:
    """A burst of Experiments sharing a stage (identical specs, a sweep's variants) asks the
    store once per (stage, key) while a lookup is in flight; a later lookup asks again (a
    missing manifest may be published at any time), a found one is kept."""
    from lima_operator.artifacts import CachedStore

    store = SlowStore()
    cached = CachedStore(store)  # type: ignore[arg-type]
    offload = Offloader(timeout_s=5, threads=10)  # the askers wait in threads of their own
    try:
        asking = [
            asyncio.create_task(offload.run("s3", "a lookup", cached.manifest, "curate", "k1"))
            for _ in range(8)
        ]
        await asyncio.sleep(0.2)
        other = asyncio.create_task(offload.run("s3", "b", cached.manifest, "curate", "k2"))
        await asyncio.sleep(0.1)
        assert store.calls == 2  # one per key, however many ask
        store.release.set()
        assert await asyncio.gather(*asking, other) == [None] * 9
        assert await offload.run("s3", "again", cached.manifest, "curate", "k1") is None
        assert store.calls == 3  # None is not kept: asked again
        store.answer = found = object()
        assert await offload.run("s3", "found", cached.manifest, "curate", "k1") is found
        assert await offload.run("s3", "kept", cached.manifest, "curate", "k1") is found
        assert store.calls == 4
    finally:
        store.release.set()
        offload.close()


async def test_a_shared_lookup_that_fails_fails_for_every_asker() -> None:
    from lima_operator.artifacts import CachedStore

    from lima.errors import StoreError

    store = SlowStore(error=StoreError("boom"))
    cached = CachedStore(store)  # type: ignore[arg-type]
    offload = Offloader(timeout_s=5, threads=4)
    try:
        asking = [
            asyncio.create_task(offload.run("s3", "a lookup", cached.manifest, "train", "k"))
            for _ in range(4)
        ]
        await asyncio.sleep(0.2)
        store.release.set()
        results = await asyncio.gather(*asking, return_exceptions=True)
        assert all(isinstance(r, StoreError) for r in results) and store.calls == 1
        assert cached._asking == {}  # nothing left in flight: the next lookup asks again
    finally:
        store.release.set()
        offload.close()


async def test_status_writes_wait_for_the_first_rayjobs_of_new_experiments() -> None:
    """experiments.Known: a status write waits while another new Experiment is on its way to
    its first RayJob, at most FIRST_RAYJOBS_FIRST_S; a start that old no longer holds it."""
    from lima_operator.experiments import Known

    known = Known()
    started = time.monotonic()
    await known.after_starts(limit=0.5)
    assert time.monotonic() - started < 0.05  # nobody starting: at once

    known.start(("ns", "a"))
    known.start(("ns", "b"))
    waiting = asyncio.create_task(known.after_starts(limit=2))
    await asyncio.sleep(0.1)
    known.start_done(("ns", "a"))
    await asyncio.sleep(0.1)
    assert not waiting.done()  # b still starting
    known.start_done(("ns", "b"))
    await asyncio.wait_for(waiting, 0.5)

    known.start(("ns", "stuck"))  # e.g. its store hangs: holds others back for `limit` at most
    started = time.monotonic()
    await known.after_starts(limit=0.3)
    assert 0.25 < time.monotonic() - started < 1
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await known.after_starts(limit=0.3)  # now older than the limit: no longer counted
    assert time.monotonic() - started < 0.05


async def test_a_cancelled_wait_leaves_the_thread_and_drops_its_late_answer() -> None:
    """A caller cancelled meanwhile (kopf stopping a handler) does not wait for the thread;
    the call's late answer, or late error, goes nowhere; the deadline timer is gone."""
    release = threading.Event()
    offload = Offloader(timeout_s=5, threads=2)

    def late(fail: bool) -> int:
        release.wait(5)
        if fail:
            raise RuntimeError("late")
        return 1

    try:
        waits = [asyncio.create_task(offload.run("s3", "x", late, fail)) for fail in (0, 1)]
        await asyncio.sleep(0.1)
        for wait in waits:
            wait.cancel()
        results = await asyncio.gather(*waits, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        release.set()
        await asyncio.sleep(0.1)  # the late answers arrive: nothing to settle, nothing raised
        assert await offload.run("s3", "y", slow, 0, 5) == 5
        assert offload._hung.get("s3", 0) == 0
    finally:
        release.set()
        offload.close()
