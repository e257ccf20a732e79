"""Quotas, temperature sampling across sites, held-out splits and k-center greedy selection."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np


def largest_remainder(
    weights: dict[str, float], total: int, caps: dict[str, int]
) -> dict[str, int]:
    """Split `total` proportionally to `weights` (Hamilton's method), never above `caps`; what a
    capped key cannot take is re-split among the others."""
    alloc = {k: 0 for k in weights}
    remaining = total
    while remaining > 0:
        room = {k: caps.get(k, 0) - alloc[k] for k in weights if weights[k] > 0}
        open_keys = [k for k, r in room.items() if r > 0]
        if not open_keys:
            break
        mass = sum(weights[k] for k in open_keys)
        shares = {k: remaining * weights[k] / mass for k in open_keys}
        given = {k: min(math.floor(shares[k]), room[k]) for k in open_keys}
        left = remaining - sum(given.values())
        by_fraction = sorted(open_keys, key=lambda k: (-(shares[k] - math.floor(shares[k])), k))
        for k in by_fraction:
            if left and given[k] < room[k]:
                given[k] += 1
                left -= 1
        for k, n in given.items():
            alloc[k] += n
        remaining = left if sum(given.values()) else 0
    return alloc


def site_quotas(counts: dict[str, int], quota: int, tau: float) -> dict[str, int]:
    """LIMA 2.1: sample across exchanges with p(site) proportional to size^(1/tau), tau = 3."""
    weights = {site: n ** (1.0 / tau) for site, n in counts.items() if n > 0}
    return largest_remainder(weights, quota, dict(counts))


def kcenter_greedy(
    vectors: np.ndarray,
    groups: Sequence[str],
    caps: dict[str, int],
    tokens: Sequence[int],
    budget: int,
    seed: int,
) -> tuple[list[int], int]:
    """Pick indices that maximise coverage (each pick is the point farthest from those chosen)
    while no group exceeds its cap and the total tokens stay within `budget`.

    Returns (chosen indices in pick order, number skipped because of the budget).
    """
    n = len(groups)
    if n == 0:
        return [], 0
    taken = {g: 0 for g in caps}
    eligible = np.array([caps.get(g, 0) > 0 for g in groups])
    distance = np.full(n, np.inf)
    chosen: list[int] = []
    spent, over_budget = 0, 0
    rng = random.Random(seed)
    first_pool = [i for i in range(n) if eligible[i]]
    next_pick = rng.choice(first_pool) if first_pool else None
    while next_pick is not None:
        i = next_pick
        eligible[i] = False
        if spent + tokens[i] > budget:
            over_budget += 1
        else:
            chosen.append(i)
            spent += tokens[i]
            taken[groups[i]] += 1
            if taken[groups[i]] >= caps[groups[i]]:
                eligible &= np.array([g != groups[i] for g in groups])
            distance = np.minimum(distance, 1.0 - vectors @ vectors[i])
        candidates = np.flatnonzero(eligible)
        if candidates.size == 0:
            break
        # ties (e.g. before the first pick of a group lands) break by index: deterministic
        next_pick = int(candidates[np.argmax(distance[candidates])])
    return chosen, over_budget


def random_selection(
    groups: Sequence[str], caps: dict[str, int], tokens: Sequence[int], budget: int, seed: int
) -> tuple[list[int], int]:
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    taken = {g: 0 for g in caps}
    chosen, spent, over = [], 0, 0
    for i in order:
        g = groups[i]
        if taken.get(g, 0) >= caps.get(g, 0):
            continue
        if spent + tokens[i] > budget:
            over += 1
            continue
        chosen.append(i)
        spent += tokens[i]
        taken[g] += 1
    return chosen, over
