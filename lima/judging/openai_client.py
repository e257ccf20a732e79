"""An OpenAI-compatible chat endpoint (vLLM server, hosted APIs) as the judge's completer.

`POST {base_url}/chat/completions` with temperature 0, through one `aiohttp.ClientSession` per
batch (aiohttp, not httpx: on this project's loaded 2-core machine httpx sustained 25-60
requests/s at 32 in flight against a 50 ms endpoint, aiohttp 270-400; benchmarks/README.md):
- at most `concurrency` requests in flight (a semaphore; backoff sleeps do not hold a slot);
- a total per-attempt timeout of `timeout_s`;
- retries on 408/409/425/429/5xx, timeouts, connection errors and malformed bodies: `max_retries`
  times through lima-run's one retry policy (`lima.retry`, tenacity): `Retry-After` when the
  endpoint sends it (capped at 300 s), else exponential backoff with full jitter
  (`backoff_s * 2**attempt`, capped at 30 s);
- other 4xx fail at once (a wrong key or model will not fix itself), and so do redirects (not
  followed, so the key never travels to another host).
The API key travels only in the `Authorization` header; it is never logged, and any response text
quoted in an error has it redacted.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from collections.abc import Mapping

import aiohttp
from pydantic import SecretStr

from lima.judging.llm import CompletionFailedError, Message
from lima.retry import async_retrying

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 425, 429})  # and every 5xx
MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 300.0


class _RetryableError(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class OpenAICompleter:
    """Completes chat conversations against an OpenAI-compatible endpoint."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: SecretStr | str | None = None,
        *,
        concurrency: int = 32,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        max_tokens: int = 1024,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self._key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_tokens = max_tokens
        self.stats = {"requests": 0, "retries": 0, "failures": 0}

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAICompleter(url={self.url!r}, model={self.model!r})"

    async def complete_many(self, conversations: list[list[Message]]) -> list[str | Exception]:
        slots = asyncio.Semaphore(self.concurrency)
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        async with aiohttp.ClientSession(
            headers=self._headers(), connector=connector, raise_for_status=False
        ) as client:
            return list(
                await asyncio.gather(*(self._complete(client, slots, c) for c in conversations))
            )

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._key is not None and self._key.get_secret_value():
            headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        return headers

    async def _complete(
        self, client: aiohttp.ClientSession, slots: asyncio.Semaphore, messages: list[Message]
    ) -> str | Exception:
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": 0,
            "max_tokens": self.max_tokens,
        }
        try:
            async for attempt in async_retrying(
                f"judge request to {self.url}",
                attempts=self.max_retries + 1,
                transient=lambda error: isinstance(error, _RetryableError),
                base_s=self.backoff_s,
                cap_s=MAX_BACKOFF_S,
                max_retry_after_s=MAX_RETRY_AFTER_S,
            ):
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        self.stats["retries"] += 1
                    async with slots:  # held for the request only, not for the backoff
                        return await self._attempt(client, body)
        except CompletionFailedError as exc:
            self.stats["failures"] += 1
            return exc
        except _RetryableError as exc:
            self.stats["failures"] += 1
            return CompletionFailedError(
                f"{exc} from {self.url} after {self.max_retries + 1} attempts"
            )
        raise AssertionError("unreachable: the retry loop returns or raises")

    async def _attempt(self, client: aiohttp.ClientSession, body: dict) -> str:
        self.stats["requests"] += 1
        try:
            async with asyncio.timeout(self.timeout_s):
                # no redirects: the key must not follow a Location header to another host
                async with client.post(self.url, json=body, allow_redirects=False) as response:
                    status, headers = response.status, response.headers
                    text = (await response.read()).decode("utf-8", errors="replace")
        except TimeoutError:
            raise _RetryableError(f"timeout after {self.timeout_s}s") from None
        except aiohttp.ClientError as exc:
            # the exception's repr could carry request headers: keep only its type
            raise _RetryableError(f"connection error ({type(exc).__name__})") from None
        if status in RETRY_STATUS or status >= 500:
            raise _RetryableError(f"HTTP {status}", _retry_after(headers))
        if 300 <= status < 400:
            raise CompletionFailedError(
                f"HTTP {status} redirect from {self.url}: set LIMA_JUDGE_BASE_URL to the final URL"
            )
        if status >= 400:
            raise CompletionFailedError(
                f"HTTP {status} from {self.url}: {self._redact(text[:200])}"
            )
        try:
            content = json.loads(text)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _RetryableError("malformed response body") from None
        return _content_text(content)

    def _redact(self, text: str) -> str:
        key = self._key.get_secret_value() if self._key is not None else ""
        return text.replace(key, "**********") if key else text


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds asked for by a `Retry-After` header (delta-seconds or an HTTP date)."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _content_text(content: object) -> str:
    """The reply text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""  # null content (e.g. only tool calls): parsed as no verdict
