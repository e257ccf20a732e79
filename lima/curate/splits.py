"""Held-out dev/test prompts and decontamination of the training pool against them."""

from __future__ import annotations

import random
from collections.abc import Iterator

from lima.curate.dedup import lean, signature, text_hash
from lima.curate.records import Item, prompt_of, reject
from lima.curate.select import largest_remainder
from lima.curate.stats import Stats
from lima.spec.data import DataSpec


def held_out_counts(
    available: dict[str, int], quotas: dict[str, int], total: int
) -> dict[str, int]:
    """How many held-out prompts each source gives: proportional to the quotas (so the prompt
    mix follows the training mix), first within each source's surplus over its quota (so quotas
    are not starved), then, if the surplus is too small, from the quota rows themselves."""
    surplus = {s: max(0, available[s] - quotas[s]) for s in available}
    weights = {s: float(max(quotas[s], 1)) for s in available}
    alloc = largest_remainder(weights, total, surplus)
    missing = total - sum(alloc.values())
    if missing > 0:
        room = {s: available[s] - alloc[s] for s in available}
        extra = largest_remainder(weights, missing, room)
        alloc = {s: alloc[s] + extra[s] for s in alloc}
    return alloc


def split_held_out(
    by_source: dict[str, list[Item]], counts: dict[str, int], spec: DataSpec
) -> tuple[list[Item], list[Item], dict[str, list[Item]]]:
    """(dev, test, remaining pool per source), seeded."""
    held: list[Item] = []
    pool: dict[str, list[Item]] = {}
    for source, docs in by_source.items():
        rng = random.Random(f"{spec.seed}:held-out:{source}")
        picked = set(rng.sample(range(len(docs)), counts.get(source, 0)))
        held += [d for i, d in enumerate(docs) if i in picked]
        pool[source] = [d for i, d in enumerate(docs) if i not in picked]
    random.Random(f"{spec.seed}:dev-test").shuffle(held)
    dev_n = min(spec.splits.dev, len(held))
    return held[:dev_n], held[dev_n : dev_n + spec.splits.test], pool


class Decontaminator:
    """Flags training docs whose prompt equals or near-duplicates a dev/test prompt."""

    def __init__(self, held_out: list[Item], spec: DataSpec) -> None:
        from datasketch import MinHashLSH

        # Prompts are short (a title is ~10 words); shingles of at most 3 words keep the
        # Jaccard estimate meaningful for them.
        self.size = min(spec.dedup.shingle_size, 3)
        self.num_perm = spec.dedup.num_perm
        self.exact = {text_hash(prompt_of(d)) for d in held_out}
        self.lsh = MinHashLSH(threshold=spec.dedup.jaccard_threshold, num_perm=self.num_perm)
        for index, item in enumerate(held_out):
            self.lsh.insert(str(index), lean(signature(prompt_of(item), self.size, self.num_perm)))

    def __call__(self, docs: list[Item], stats: Stats) -> Iterator[Item]:
        for item in docs:
            prompt = prompt_of(item)
            hit = text_hash(prompt) in self.exact or bool(
                self.lsh.query(lean(signature(prompt, self.size, self.num_perm)))
            )
            if hit:
                stats.count_drop(item["source"], "contaminates_eval")
                yield reject(
                    item["source"],
                    item["file"],
                    item["row"],
                    "contaminates_eval",
                    "prompt near-duplicates a dev/test prompt",
                    prompt,
                )
            else:
                yield item
