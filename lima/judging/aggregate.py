"""Aggregating verdicts: win/tie/loss with bootstrap CIs, label distributions, judge agreement
(the paper's tie-discounted accuracy and Cohen's kappa), and position consistency.

Invalid verdicts are excluded from every rate and counted separately.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from lima.judging.orders import PAIR_LABELS, consistent
from lima.judging.types import PAIRWISE_VALUES, SCORED, VALUES, Verdict


def win_tie_loss(verdicts: list[Verdict], resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Win/tie/loss rates of the tested answers with percentile-bootstrap 95% CIs over prompts.

    Returns `{"n", "invalid", "win", "tie", "loss", "score", "ci": {"win": [lo, hi], ...,
    "score": [lo, hi]}, "resamples", "seed"}`; `score` = win + tie/2 (FastChat's
    `win_rate_adjusted`, the select stage's criterion). Prompts (not verdicts) are resampled:
    every turn of a multi-turn prompt shares its `prompt_id` and moves with it. With no valid
    verdict the rates and bounds are None. Same seed -> same CIs.
    """
    valid = [v for v in verdicts if v.valid and v.value in PAIRWISE_VALUES]
    out: dict[str, Any] = {
        "n": len(valid),
        "invalid": len(verdicts) - len(valid),
        "resamples": resamples,
        "seed": seed,
    }
    if not valid:
        out.update({label: None for label in (*PAIRWISE_VALUES, "score")})
        out["ci"] = {label: [None, None] for label in (*PAIRWISE_VALUES, "score")}
        return out
    counts = _counts_per_prompt(valid)  # shape (prompts, 3)
    totals = counts.sum(axis=0)
    for j, label in enumerate(PAIRWISE_VALUES):
        out[label] = float(totals[j] / totals.sum())
    out["score"] = float((totals[0] + 0.5 * totals[1]) / totals.sum())
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, counts.shape[0], size=(resamples, counts.shape[0]))
    sampled = counts[picks].sum(axis=1)  # (resamples, 3)
    rates = sampled / sampled.sum(axis=1, keepdims=True)
    rates = np.column_stack([rates, rates[:, 0] + 0.5 * rates[:, 1]])  # + score
    lo, hi = np.percentile(rates, [2.5, 97.5], axis=0)
    labels = (*PAIRWISE_VALUES, "score")
    out["ci"] = {label: [float(lo[j]), float(hi[j])] for j, label in enumerate(labels)}
    return out


def _counts_per_prompt(verdicts: list[Verdict]) -> np.ndarray:
    index: dict[str, int] = {}
    rows: list[list[int]] = []
    for verdict in verdicts:
        row = index.setdefault(verdict.prompt_id, len(rows))
        if row == len(rows):
            rows.append([0, 0, 0])
        rows[row][PAIRWISE_VALUES.index(verdict.value)] += 1
    return np.asarray(rows, dtype=np.int64)


def distribution(verdicts: list[Verdict]) -> dict[str, Any]:
    """Counts and shares per label (absolute, likert, safety; pairwise works too).

    Returns `{"protocol", "n", "invalid", "counts": {label: c}, "shares": {label: s}}`, every
    label of the protocol present (zero when unseen; labels are strings so the dict is JSON),
    plus `"mean"` for the numeric scales (likert 1-6, single 1-10: FastChat's MT-Bench score).
    """
    protocols = {v.protocol for v in verdicts}
    if len(protocols) > 1:
        raise ValueError(f"verdicts mix protocols: {sorted(protocols)}")
    protocol = protocols.pop() if protocols else None
    labels = VALUES.get(protocol, ()) if protocol else ()
    valid = [v for v in verdicts if v.valid and v.value in labels]
    counts = Counter(v.value for v in valid)
    n = len(valid)
    out: dict[str, Any] = {
        "protocol": protocol,
        "n": n,
        "invalid": len(verdicts) - n,
        "counts": {str(label): counts.get(label, 0) for label in labels},
        "shares": {str(label): (counts.get(label, 0) / n if n else None) for label in labels},
    }
    if protocol in SCORED:
        out["mean"] = float(np.mean([v.value for v in valid])) if n else None
    return out


def agreement(a: list[Verdict], b: list[Verdict]) -> dict[str, Any]:
    """Agreement of two judges (or a judge and human labels), matched on prompt id and turn.

    `tie_discounted_accuracy` is the paper's measure (Section 4.1): 1 when both give the same
    label, 0.5 when exactly one of them says tie, 0 otherwise (for non-pairwise labels it is
    plain agreement). `kappa` is Cohen's kappa over the labels seen (None when undefined, i.e.
    both judges always give one and the same label). Only prompts valid in both count.
    """
    left = {v.key: v.value for v in a if v.valid}
    right = {v.key: v.value for v in b if v.valid}
    shared = [pid for pid in left if pid in right]
    pairs = [(left[pid], right[pid]) for pid in shared]
    n = len(pairs)
    if n == 0:
        return {"n": 0, "tie_discounted_accuracy": None, "exact": None, "kappa": None}
    points = [_tie_discounted(x, y) for x, y in pairs]
    return {
        "n": n,
        "tie_discounted_accuracy": sum(points) / n,
        "exact": sum(x == y for x, y in pairs) / n,
        "kappa": cohen_kappa(pairs),
    }


def _tie_discounted(x: Any, y: Any) -> float:
    if x == y:
        return 1.0
    if "tie" in (x, y):
        return 0.5
    return 0.0


def cohen_kappa(pairs: list[tuple[Any, Any]]) -> float | None:
    """Cohen's kappa: (p_o - p_e) / (1 - p_e) with chance agreement from each rater's marginals."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(x == y for x, y in pairs) / n
    left = Counter(x for x, _ in pairs)
    right = Counter(y for _, y in pairs)
    expected = sum(left[label] * right[label] for label in left) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def position_summary(verdicts: list[Verdict], symmetric: bool) -> dict[str, Any]:
    """`position_consistency` for a report row: None with a reason for a symmetric judge (it
    cannot depend on order, so a measured 1.0 would mean nothing)."""
    if symmetric:
        return {"position_consistency": None, "position_consistency_note": "n/a: symmetric judge"}
    return {"position_consistency": position_consistency(verdicts)}


def position_consistency(verdicts: list[Verdict]) -> float | None:
    """Share of pairwise items whose two orders name the same outcome for the tested answer.

    Counts items whose both per-order labels parsed (detail `ab` and `ba`); None when there is
    none (e.g. every verdict invalid).
    """
    eligible = [
        (v.detail.get("ab"), v.detail.get("ba"))
        for v in verdicts
        if v.protocol == "pairwise"
        and v.detail.get("ab") in PAIR_LABELS
        and v.detail.get("ba") in PAIR_LABELS
    ]
    if not eligible:
        return None
    return sum(consistent(ab, ba) for ab, ba in eligible) / len(eligible)
