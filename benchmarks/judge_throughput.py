"""Judge throughput against a local OpenAI-compatible endpoint with injected latency.

The endpoint (tests/scripted_endpoint.py's ScriptedEndpoint, real HTTP) runs in its own process and
answers every request after `--latency` seconds. With `--concurrency` requests in flight the
best possible rate is concurrency / latency requests per second (the bound); the goal is
>= 80 % of it. Rows:
- `lima judge, absolute`: the full OpenAI judge path (templates, HTTP, parsing) at one request
  per judgment;
- `lima judge, pairwise`: both orders, so two requests per judgment (bound halves);
- `raw aiohttp` / `raw httpx`: the bare client libraries posting the same body in the same
  bounded loop, with no judging logic: the ceiling of this machine for each library.

    .venv/bin/python benchmarks/judge_throughput.py [--latency 0.05] [--concurrency 32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TESTS = Path(__file__).resolve().parent.parent / "tests"
BODY = {"model": "bench", "messages": [{"role": "user", "content": "x" * 2000}]}


def serve(latency: float, conn: Any) -> None:
    sys.path.insert(0, str(TESTS))  # the scripted endpoint is a test helper, not lima code
    from scripted_endpoint import Reply, ScriptedEndpoint

    def responder(body: dict) -> Reply:
        text = body["messages"][-1]["content"]
        if "Fail, Pass or Excellent" in text:  # the lima set's absolute question
            return Reply("The answer covers the request.\nPass")
        return Reply("Both are fine but A is clearer.\nAnswer A is significantly better.")

    endpoint = ScriptedEndpoint(responder, latency=latency).start()
    conn.send(endpoint.port)
    while True:
        message = conn.recv()
        if message == "reset":
            endpoint.reset_counts()
            conn.send("ok")
        elif message == "stats":
            conn.send({"requests": endpoint.requests, "max_in_flight": endpoint.max_in_flight})
        else:
            break
    endpoint.stop()


def judge_rate(url: str, protocol: str, judgments: int, concurrency: int) -> tuple[int, float]:
    from lima.judging import Item
    from lima.judging.llm import LLMJudge
    from lima.judging.openai_client import OpenAICompleter

    completer = OpenAICompleter(url, "bench", "sk-bench", concurrency=concurrency, max_retries=0)
    judge = LLMJudge("openai:bench", completer)
    items = [
        Item(str(i), f"Question {i}?", f"Answer {i}.", other=f"Other {i}.")
        for i in range(judgments)
    ]
    started = time.perf_counter()
    verdicts = judge.judge(protocol, items)
    elapsed = time.perf_counter() - started
    assert all(v.valid for v in verdicts), "benchmark replies must parse"
    return judgments, elapsed


async def _raw_aiohttp(url: str, requests: int, concurrency: int) -> None:
    import aiohttp

    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:

        async def one() -> None:
            async with slots, s.post(url + "/chat/completions", json=BODY) as response:
                await response.json()

        await asyncio.gather(*(one() for _ in range(requests)))


async def _raw_httpx(url: str, requests: int, concurrency: int) -> None:
    import httpx

    slots = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:

        async def one() -> None:
            async with slots:
                (await client.post(url + "/chat/completions", json=BODY)).json()

        await asyncio.gather(*(one() for _ in range(requests)))


def raw_rate(kind: str, url: str, requests: int, concurrency: int) -> tuple[int, float]:
    runner = _raw_aiohttp if kind == "aiohttp" else _raw_httpx
    started = time.perf_counter()
    asyncio.run(runner(url, requests, concurrency))
    return requests, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--judgments", type=int, default=1280)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bound = args.concurrency / args.latency
    parent, child = mp.get_context("spawn").Pipe()
    server = mp.get_context("spawn").Process(target=serve, args=(args.latency, child), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{parent.recv()}/v1"
    # warm-up: connections, imports, template compilation
    judge_rate(url, "absolute", args.concurrency * 2, args.concurrency)
    rows = []
    n = args.judgments
    cases = [
        ("lima judge, absolute", 1, lambda: judge_rate(url, "absolute", n, args.concurrency)),
        ("lima judge, pairwise", 2, lambda: judge_rate(url, "pairwise", n // 2, args.concurrency)),
        ("raw aiohttp (peer)", 1, lambda: raw_rate("aiohttp", url, n, args.concurrency)),
        ("raw httpx (peer)", 1, lambda: raw_rate("httpx", url, n // 4, args.concurrency)),
    ]
    for name, per_judgment, case in cases:
        runs = []
        for _ in range(args.repeat):
            parent.send("reset")
            parent.recv()
            count, elapsed = case()
            parent.send("stats")
            runs.append((count / elapsed, parent.recv()))
        rates = sorted(rate for rate, _ in runs)
        stats = runs[-1][1]
        rows.append((name, count, stats, statistics.median(rates), rates[-1], bound / per_judgment))
    parent.send("stop")
    server.join(10)
    print(
        f"latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}, "
        f"bound {bound:.0f} requests/s, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}, median and best of {args.repeat} runs"
    )
    header = f"{'client':<22}{'judgments':>10}{'requests':>9}{'in flight':>10}"
    header += f"{'median/s':>10}{'best/s':>8}{'bound/s':>9}{'median %':>10}{'best %':>8}"
    print(header)
    for name, count, stats, median, best, limit in rows:
        print(
            f"{name:<22}{count:>10}{stats['requests']:>9}{stats['max_in_flight']:>10}"
            f"{median:>10.1f}{best:>8.1f}{limit:>9.0f}{median / limit:>10.0%}{best / limit:>8.0%}"
        )


if __name__ == "__main__":
    main()
