"""Artifact-store calls off the operator's event loop, with a deadline and a bulkhead per endpoint.

The store client (minio, urllib3) blocks. Run on the event loop, one S3 endpoint that accepts
connections but never answers stalled every watch, every other Experiment and kopf's /healthz
(so the liveness probe restarted the operator in a loop). Here every store call runs in a small
thread pool of its endpoint and is awaited for at most `timeout_s`:

- a hung endpoint holds only its own threads: Experiments on other endpoints never wait;
- once all of an endpoint's threads hang, further calls to it fail at once (no new thread, no
  new wait) until one of them returns: the Experiment shows StoreUnavailableError and is retried;
- the event loop (watches, probes, other Experiments) is never blocked.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from lima.errors import StoreError

log = logging.getLogger("lima_operator")
T = TypeVar("T")
THREADS_PER_ENDPOINT = 8


class StoreUnavailableError(StoreError):
    """The artifact store did not answer in time (or is known to be hanging)."""


class Offloader:
    def __init__(self, timeout_s: float, threads: int = THREADS_PER_ENDPOINT) -> None:
        self.timeout_s = timeout_s
        self.threads = threads
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._in_flight: dict[str, int] = {}

    async def run(self, endpoint: str, what: str, call: Callable[..., T], *args: object) -> T:
        """`call(*args)` in `endpoint`'s pool; StoreUnavailableError after `timeout_s`."""
        if self._in_flight.get(endpoint, 0) >= self.threads:
            raise StoreUnavailableError(
                f"artifact store {endpoint}: {self.threads} calls still unanswered; {what} "
                "not attempted"
            )
        pool = self._pools.get(endpoint)
        if pool is None:
            name = f"store-{len(self._pools)}"
            pool = self._pools[endpoint] = ThreadPoolExecutor(self.threads, thread_name_prefix=name)
        loop = asyncio.get_running_loop()
        self._in_flight[endpoint] = self._in_flight.get(endpoint, 0) + 1
        future = loop.run_in_executor(pool, functools.partial(call, *args))
        future.add_done_callback(lambda done: self._done(endpoint, done))
        try:
            # shield: a timeout abandons the wait, not the thread (it cannot be interrupted);
            # the thread is counted as in flight until the call really returns.
            return await asyncio.wait_for(asyncio.shield(future), self.timeout_s)
        except TimeoutError:
            log.warning("artifact store %s: %s took over %.0f s", endpoint, what, self.timeout_s)
            raise StoreUnavailableError(
                f"artifact store {endpoint} did not answer {what} within {self.timeout_s:g} s"
            ) from None

    def _done(self, endpoint: str, done: asyncio.Future) -> None:
        self._in_flight[endpoint] -= 1
        if not done.cancelled():
            done.exception()  # retrieved: an abandoned call's late error is not "never retrieved"

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
        self._pools.clear()
