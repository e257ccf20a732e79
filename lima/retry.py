"""The one retry policy of lima-run: exponential backoff with jitter, on tenacity.

The artifact store (S3 calls) and the judge client (HTTP calls to an OpenAI-compatible endpoint)
both retry transient failures. They share this policy so that "transient", "how long to wait" and
"what is logged" mean the same everywhere:

- the wait doubles from `base_s` up to `cap_s`, with full jitter (a burst of failures spreads out);
- a server that says how long to wait (`Retry-After`, exposed as `error.retry_after` seconds) is
  obeyed, up to `max_retry_after_s`;
- each retry is logged at INFO with what was being done and the error's type only: exception texts
  can carry request headers or URLs with credentials, so they are never logged here.

    for attempt in retrying("upload s3://b/k", attempts=5, transient=is_transient):
        with attempt:
            client.put_object(...)
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

import tenacity

log = logging.getLogger("lima.retry")

__all__ = ["Backoff", "async_retrying", "retrying"]


class Backoff(tenacity.wait.wait_base):
    """Full-jitter exponential backoff that honours an error's `retry_after` (seconds)."""

    def __init__(
        self, base_s: float, cap_s: float = 30.0, max_retry_after_s: float = 120.0
    ) -> None:
        self.base_s, self.cap_s, self.max_retry_after_s = base_s, cap_s, max_retry_after_s

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        asked = getattr(error, "retry_after", None)
        if isinstance(asked, int | float) and asked >= 0:
            return min(float(asked), self.max_retry_after_s)
        ceiling = min(self.base_s * 2 ** (retry_state.attempt_number - 1), self.cap_s)
        return random.uniform(0, ceiling)


def _log_retry(what: str) -> Callable[[tenacity.RetryCallState], None]:
    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.info(
            "%s: transient %s, retry %d in %.2fs",
            what,
            type(error).__name__,
            state.attempt_number,
            delay,
        )

    return before_sleep


def _policy(
    what: str,
    attempts: int,
    transient: Callable[[BaseException], bool],
    backoff: Backoff,
) -> dict[str, Any]:
    return {
        "stop": tenacity.stop_after_attempt(max(1, attempts)),
        "wait": backoff,
        "retry": tenacity.retry_if_exception(transient),
        "before_sleep": _log_retry(what),
        "reraise": True,  # the caller sees its own exception type, not tenacity's RetryError
    }


def retrying(
    what: str,
    *,
    attempts: int,
    transient: Callable[[BaseException], bool],
    base_s: float = 0.5,
    cap_s: float = 30.0,
    sleep: Callable[[float], None] | None = None,
) -> tenacity.Retrying:
    """A synchronous retry loop: `for attempt in retrying(...): with attempt: call()`."""
    extra = {"sleep": sleep} if sleep is not None else {}
    return tenacity.Retrying(**_policy(what, attempts, transient, Backoff(base_s, cap_s)), **extra)


def async_retrying(
    what: str,
    *,
    attempts: int,
    transient: Callable[[BaseException], bool],
    base_s: float = 0.5,
    cap_s: float = 30.0,
    max_retry_after_s: float = 120.0,
) -> tenacity.AsyncRetrying:
    """The asyncio form: `async for attempt in async_retrying(...): with attempt: await call()`."""
    backoff = Backoff(base_s, cap_s, max_retry_after_s)
    return tenacity.AsyncRetrying(**_policy(what, attempts, transient, backoff))
