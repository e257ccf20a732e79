"""Artifact-store calls off the operator's event loop, with a deadline and a bulkhead per endpoint.

The store client (minio, urllib3) blocks. Run on the event loop, one S3 endpoint that accepts
connections but never answers stalled every watch, every other Experiment and kopf's /healthz
(so the liveness probe restarted the operator in a loop). Here every store call runs in a
thread pool of its endpoint and is awaited for at most `timeout_s`, queueing included:

- a hung endpoint holds only its own threads: Experiments on other endpoints never wait;
- a busy endpoint (a burst of new Experiments) queues calls in its pool: they are slower, not
  failed (failing them made a burst of 100 Experiments retry for seconds);
- a call still running after its deadline marks its thread as hung; once every thread of an
  endpoint is hung, further calls to it fail at once (no new thread, no new wait) until one
  returns: the Experiment shows StoreUnavailableError and is retried;
- the event loop (watches, probes, other Experiments) is never blocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from lima.errors import StoreError

log = logging.getLogger("lima_operator")
T = TypeVar("T")
THREADS_PER_ENDPOINT = 32
"""Threads (hence concurrent S3 requests, one connection each) per store endpoint."""


class StoreUnavailableError(StoreError):
    """The artifact store did not answer in time (or is known to be hanging)."""


class _ExpiredError(Exception):
    """A store call's deadline passed before its answer (internal to Offloader.run)."""


def _answered(loop: asyncio.AbstractEventLoop, answer: asyncio.Future, done: Future) -> None:
    """In the store thread: hand the call's outcome to the event loop."""
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(_settle, answer, done)


def _settle(answer: asyncio.Future, done: Future | None) -> None:
    """On the event loop: `answer` takes the thread's outcome, or (`done` None) the deadline."""
    if answer.done():  # the other one came first, or the caller was cancelled
        return
    if done is None:
        answer.set_exception(_ExpiredError())
    elif done.cancelled():
        answer.cancel()
    elif done.exception() is not None:
        answer.set_exception(done.exception())
    else:
        answer.set_result(done.result())


class Offloader:
    def __init__(self, timeout_s: float, threads: int = THREADS_PER_ENDPOINT) -> None:
        self.timeout_s = timeout_s
        self.threads = threads
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._hung: dict[str, int] = {}  # calls past their deadline and still running

    async def run(self, endpoint: str, what: str, call: Callable[..., T], *args: object) -> T:
        """`call(*args)` in `endpoint`'s pool; StoreUnavailableError after `timeout_s`."""
        if self._hung.get(endpoint, 0) >= self.threads:
            raise StoreUnavailableError(
                f"artifact store {endpoint}: {self.threads} calls still unanswered; {what} "
                "not attempted"
            )
        pool = self._pools.get(endpoint)
        if pool is None:
            name = f"store-{len(self._pools)}"
            pool = self._pools[endpoint] = ThreadPoolExecutor(self.threads, thread_name_prefix=name)
        submitted = pool.submit(functools.partial(call, *args))
        # One future the caller awaits, settled by the thread's answer or by the deadline,
        # whichever comes first: two event-loop turns from the thread's return to the caller
        # (wrap_future + shield + wait_for took five; in a burst each turn runs every other
        # ready task first). A deadline abandons the wait, not the thread (it cannot be
        # interrupted); a late answer, or a late error, is dropped.
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()
        deadline = loop.call_later(self.timeout_s, _settle, answer, None)
        submitted.add_done_callback(functools.partial(_answered, loop, answer))
        try:
            return await answer
        except _ExpiredError:
            self._abandon(endpoint, submitted)
            log.warning("artifact store %s: %s took over %.0f s", endpoint, what, self.timeout_s)
            raise StoreUnavailableError(
                f"artifact store {endpoint} did not answer {what} within {self.timeout_s:g} s"
            ) from None
        finally:
            deadline.cancel()

    def _abandon(self, endpoint: str, submitted: Future) -> None:
        """A call past its deadline: dropped if still queued, else its thread counts as hung."""
        if submitted.cancel():
            return
        self._hung[endpoint] = self._hung.get(endpoint, 0) + 1
        submitted.add_done_callback(lambda _: self._returned(endpoint))

    def _returned(self, endpoint: str) -> None:
        self._hung[endpoint] -= 1

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
        self._pools.clear()
