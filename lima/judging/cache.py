"""Verdict caching in the artifact store, and the error raised when a judge could not answer.

Key material: judge name, the judge's fingerprint (prompt templates / thresholds), protocol,
prompt, answer A, answer B, plus the reference answer and the finished flags (the reference judge
reads them). The prompt id is not part of the key: the same question about the same texts is
the same verdict. Verdicts that failed for transport reasons are never cached, so a re-run asks
again; parse failures are cached (the endpoint answered; asking again at temperature 0 would
repeat it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from lima.errors import StageError
from lima.judging.types import Item, Judge, Verdict, check_protocol
from lima.store.artifacts import ArtifactStore

log = logging.getLogger(__name__)

NAMESPACE = "judge-verdicts"
CACHE_VERSION = 1
CACHE_THREADS = 8


class JudgeError(StageError):
    """The judge endpoint failed for some items after every retry (their verdicts are missing;
    the others are cached, so a re-run resumes)."""


def cache_material(judge: Judge, protocol: str, item: Item) -> dict[str, Any]:
    return {
        "v": CACHE_VERSION,
        "judge": judge.name,
        "fingerprint": getattr(judge, "fingerprint", ""),
        "protocol": protocol,
        "prompt": item.prompt,
        "a": item.answer,
        "b": item.other,
        "reference": item.reference,
        "finished": [item.finished, item.other_finished],
    }


class CachedJudge:
    """Wraps a judge: answers from the store when it can, asks the inner judge for the rest."""

    def __init__(self, inner: Judge, store: ArtifactStore | None) -> None:
        self.inner = inner
        self.store = store
        self.name = inner.name
        self.proxy = inner.proxy
        self.hits = 0
        self.misses = 0

    def judge(self, protocol: str, items: list[Item]) -> list[Verdict]:
        protocol = check_protocol(protocol)
        results: list[Verdict | None] = self._map(lambda item: self._get(protocol, item), items)
        missing = [index for index, verdict in enumerate(results) if verdict is None]
        self.hits += len(items) - len(missing)
        self.misses += len(missing)
        fresh = self.inner.judge(protocol, [items[i] for i in missing]) if missing else []
        failed, keep = [], []
        for index, verdict in zip(missing, fresh, strict=True):
            results[index] = verdict
            (failed if verdict.detail.get("error") else keep).append((items[index], verdict))
        if self.store is not None:
            self._map(lambda pair: self._put(protocol, *pair), keep)
        if failed:
            raise JudgeError(
                f"judge {self.name}: {len(failed)} of {len(items)} {protocol} verdicts failed "
                f"after retries (first: {failed[0][1].detail['error']}); the other verdicts are "
                "cached, so a re-run resumes"
            )
        log.info(
            "judge %s %s: %d items, %d from cache",
            self.name,
            protocol,
            len(items),
            len(items) - len(missing),
        )
        return [verdict for verdict in results if verdict is not None]

    def _map(self, function: Callable[[Any], Any], values: list[Any]) -> list[Any]:
        """`function` over `values` on a few threads: each cache access is one object-store
        request, and S3 round trips dominate a re-run that is all hits."""
        if self.store is None or len(values) < 2:
            return [function(value) for value in values]
        with ThreadPoolExecutor(max_workers=CACHE_THREADS) as pool:
            return list(pool.map(function, values))

    def _put(self, protocol: str, item: Item, verdict: Verdict) -> None:
        assert self.store is not None
        material = cache_material(self.inner, protocol, item)
        self.store.cache_put(NAMESPACE, material, verdict.to_dict())

    def _get(self, protocol: str, item: Item) -> Verdict | None:
        if self.store is None:
            return None
        raw = self.store.cache_get(NAMESPACE, cache_material(self.inner, protocol, item))
        if raw is None:
            return None
        verdict = Verdict.from_dict(raw)
        return replace(verdict, prompt_id=item.prompt_id, detail={**verdict.detail, "cached": True})
