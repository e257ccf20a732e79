"""Verdict caching in the artifact store, and the error raised when a judge could not answer.

Key material: judge name, the judge's fingerprint (prompt templates / thresholds), protocol,
the turn being judged with the conversation before it (both systems' earlier answers), answer A,
answer B, the reference answer and the finished flags. The prompt id is not part of the key: the
same question about the same texts is the same verdict.

What is cached: valid verdicts only. Transport failures are never cached (a re-run asks again),
and neither are unparseable or ambiguous replies: a re-run (perhaps with a fixed prompt, parser or
judge) asks again rather than replaying an answer nobody could read.

Each entry is an envelope `{"v", "material", "digest", "verdict"}`: `material` is the sha256 of
the key material and `digest` the sha256 of (material, verdict). An entry that does not parse,
lacks a field, belongs to another question or whose digest does not match (truncated, bit-flipped
or edited by hand without re-digesting) is ignored with a warning naming it, the verdict is asked
again and the entry overwritten. The digest catches corruption and careless edits; it is not a
signature against someone with write access to the store who recomputes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from lima.errors import StageError
from lima.judging.types import Item, Judge, Verdict, check_protocol

if TYPE_CHECKING:
    from lima.store.artifacts import ArtifactStore

log = logging.getLogger(__name__)

NAMESPACE = "judge-verdicts"
CACHE_VERSION = 2
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
        "history": [asdict(turn) for turn in item.history],
        "a": item.answer,
        "b": item.other,
        "reference": item.reference,
        "finished": [item.finished, item.other_finished],
    }


def _sha256(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def envelope(material: dict[str, Any], verdict: Verdict) -> dict[str, Any]:
    """The stored form of a verdict: digested, and tied to the question it answers."""
    body = verdict.to_dict()
    material_sha = _sha256(material)
    return {
        "v": CACHE_VERSION,
        "material": material_sha,
        "digest": _sha256({"material": material_sha, "verdict": body}),
        "verdict": body,
    }


def open_envelope(material: dict[str, Any], raw: Any) -> Verdict:
    """The verdict in a stored entry; ValueError saying what is wrong with it."""
    if not isinstance(raw, dict) or raw.get("v") != CACHE_VERSION:
        raise ValueError("not a verdict-cache entry of this version")
    material_sha = _sha256(material)
    if raw.get("material") != material_sha:
        raise ValueError("entry answers another question")
    body = raw.get("verdict")
    if raw.get("digest") != _sha256({"material": material_sha, "verdict": body}):
        raise ValueError("digest mismatch (entry corrupted or edited)")
    try:
        verdict = Verdict.from_dict(body)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed verdict ({type(exc).__name__}: {exc})") from None
    if not verdict.valid:
        raise ValueError("invalid verdicts are never cached")
    return verdict


class CachedJudge:
    """Wraps a judge: answers from the store when it can, asks the inner judge for the rest.

    `hits`, `misses` and `bad_entries` count what happened (run facts for the stage summary,
    never written into verdicts)."""

    def __init__(self, inner: Judge, store: ArtifactStore | None) -> None:
        self.inner = inner
        self.store = store
        self.name = inner.name
        self.proxy = inner.proxy
        self.symmetric = getattr(inner, "symmetric", False)
        self.hits = 0
        self.misses = 0
        self.bad_entries: list[str] = []

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
            if verdict.detail.get("error"):
                failed.append((items[index], verdict))
            elif verdict.valid:
                keep.append((items[index], verdict))
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
        self.store.cache_put(NAMESPACE, material, envelope(material, verdict))

    def _get(self, protocol: str, item: Item) -> Verdict | None:
        if self.store is None:
            return None
        material = cache_material(self.inner, protocol, item)
        try:
            raw = self.store.cache_get(NAMESPACE, material)
            if raw is None:
                return None
            verdict = open_envelope(material, raw)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            entry = f"{NAMESPACE}/{_entry_name(material)}"
            self.bad_entries.append(entry)
            log.warning("verdict cache entry %s ignored (%s); asking the judge again", entry, exc)
            return None
        return replace(verdict, prompt_id=item.prompt_id, turn=item.turn)


def _entry_name(material: dict[str, Any]) -> str:
    """The entry's object name in the store's cache folder (the store keys entries by the
    sha256 of the canonical key material)."""
    from lima.store.artifacts import canonical_json, sha256_text

    return sha256_text(canonical_json(material)) + ".json"
