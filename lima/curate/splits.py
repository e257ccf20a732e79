"""Held-out dev/test prompts, drawn only from what the training quotas leave over."""

from __future__ import annotations

import random

from lima.curate.diversity import largest_remainder
from lima.curate.records import Doc
from lima.spec.data import DataSpec


def held_out_counts(
    available: dict[str, int], quotas: dict[str, int], total: int
) -> dict[str, int]:
    """How many held-out prompts each source gives: proportional to the quotas (so the prompt
    mix follows the training mix), and only from each source's surplus over its quota, so the
    held-out splits never take a row the training set needs. When the surplus is too small the
    splits come out short (see `held_out_shortfalls`)."""
    surplus = {s: max(0, available[s] - quotas[s]) for s in available}
    weights = {s: float(max(quotas[s], 1)) for s in available}
    return largest_remainder(weights, total, surplus)


def held_out_shortfalls(
    spec: DataSpec, available: dict[str, int], quotas: dict[str, int], dev: int, test: int
) -> list[str]:
    """One line per split that came out short, with the numbers that explain why."""
    wanted = {"dev": spec.splits.dev, "test": spec.splits.test}
    got = {"dev": dev, "test": test}
    surplus = sum(max(0, available[s] - quotas[s]) for s in available)
    return [
        f"{split}: {got[split]} of {wanted[split]} prompts (the sources have "
        f"{sum(available.values())} usable rows, {sum(quotas.values())} of them reserved for the "
        f"training quotas, {surplus} left over; held-out prompts never take training rows)"
        for split in ("dev", "test")
        if got[split] < wanted[split]
    ]


def split_held_out(
    by_source: dict[str, list[Doc]], counts: dict[str, int], spec: DataSpec
) -> tuple[list[Doc], list[Doc], dict[str, list[Doc]]]:
    """(dev, test, remaining pool per source), seeded."""
    held: list[Doc] = []
    pool: dict[str, list[Doc]] = {}
    for source, docs in by_source.items():
        rng = random.Random(f"{spec.seed}:held-out:{source}")
        picked = set(rng.sample(range(len(docs)), counts.get(source, 0)))
        held += [d for i, d in enumerate(docs) if i in picked]
        pool[source] = [d for i, d in enumerate(docs) if i not in picked]
    random.Random(f"{spec.seed}:dev-test").shuffle(held)
    wanted = spec.splits.dev + spec.splits.test
    # Too few held-out rows: both splits shrink in proportion (an empty test set would leave
    # nothing to evaluate, an empty dev set nothing to pick the checkpoint with).
    share = spec.splits.dev / wanted if wanted else 0
    dev_n = spec.splits.dev if len(held) >= wanted else round(len(held) * share)
    return held[:dev_n], held[dev_n : dev_n + spec.splits.test], pool
