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
from dataclasses import replace
from typing import Any

from lima.errors import StageError
from lima.judging.types import Item, Judge, Verdict, check_protocol
from lima.store.artifacts import ArtifactStore

log = logging.getLogger(__name__)

NAMESPACE = "judge-verdicts"
CACHE_VERSION = 1


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
        results: list[Verdict | None] = [None] * len(items)
        missing: list[int] = []
        for index, item in enumerate(items):
            cached = self._get(protocol, item)
            if cached is None:
                missing.append(index)
            else:
                results[index] = cached
        self.hits += len(items) - len(missing)
        self.misses += len(missing)
        fresh = self.inner.judge(protocol, [items[i] for i in missing]) if missing else []
        failed = []
        for index, verdict in zip(missing, fresh, strict=True):
            results[index] = verdict
            if verdict.detail.get("error"):
                failed.append(verdict)
            elif self.store is not None:
                material = cache_material(self.inner, protocol, items[index])
                self.store.cache_put(NAMESPACE, material, verdict.to_dict())
        if failed:
            raise JudgeError(
                f"judge {self.name}: {len(failed)} of {len(items)} {protocol} verdicts failed "
                f"after retries (first: {failed[0].detail['error']}); the other verdicts are "
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

    def _get(self, protocol: str, item: Item) -> Verdict | None:
        if self.store is None:
            return None
        raw = self.store.cache_get(NAMESPACE, cache_material(self.inner, protocol, item))
        if raw is None:
            return None
        verdict = Verdict.from_dict(raw)
        return replace(verdict, prompt_id=item.prompt_id, detail={**verdict.detail, "cached": True})
