"""A scripted OpenAI-compatible chat endpoint on 127.0.0.1, for tests and the throughput
benchmark: real HTTP (aiohttp), replies chosen by a Python function, injected latency, status
codes, headers and garbage bodies. Not for production use."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Reply:
    """What the endpoint answers to one request."""

    text: str = "Verdict: neither"
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    """Raw body to send instead of a chat completion (garbage, error JSON)."""


Responder = Callable[[dict[str, Any]], Reply]


def last_user_message(body: dict[str, Any]) -> str:
    return next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")


def first_user_message(body: dict[str, Any]) -> str:
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


class ScriptedEndpoint:
    """`POST /v1/chat/completions` answered by `responder(body)` after `latency` seconds.

    Counts requests and the largest number in flight at once, and keeps every request's body
    and Authorization header. Use as a context manager; `url` is the base URL (`.../v1`).
    """

    def __init__(self, responder: Responder | None = None, latency: float = 0.0) -> None:
        self.responder = responder or (lambda body: Reply())
        self.latency = latency
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.bodies: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset_counts(self) -> None:
        self.requests = self.max_in_flight = 0
        self.bodies.clear()
        self.authorizations.clear()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            body = await request.json()
            self.bodies.append(body)
            self.authorizations.append(request.headers.get("Authorization"))
            reply = self.responder(body)
            if self.latency or reply.delay:
                await asyncio.sleep(self.latency + reply.delay)
            if reply.body is not None:
                return web.Response(status=reply.status, text=reply.body, headers=reply.headers)
            payload = {
                "id": f"cmpl-{self.requests}",
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.text},
                        "finish_reason": "stop",
                    }
                ],
            }
            return web.Response(
                status=reply.status,
                text=json.dumps(payload),
                content_type="application/json",
                headers=reply.headers,
            )
        finally:
            self.in_flight -= 1

    def start(self) -> ScriptedEndpoint:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
            self._loop.run_until_complete(site.start())
            self.port = self._runner.addresses[0][1]
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="scripted-endpoint", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("scripted endpoint did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> ScriptedEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
