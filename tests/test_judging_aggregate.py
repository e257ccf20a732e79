"""Aggregation against hand-computed values: both-orders rule, win/tie/loss and its bootstrap,
distributions, tie-discounted accuracy, Cohen's kappa, position consistency."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lima.judging import (
    Verdict,
    agreement,
    distribution,
    position_consistency,
    position_summary,
    win_tie_loss,
)
from lima.judging.orders import combine, consistent


@pytest.mark.parametrize(
    ("ab", "ba", "outcome", "same"),
    [
        ("A", "B", "win", True),  # tested answer preferred in both positions
        ("B", "A", "loss", True),
        ("neither", "neither", "tie", True),
        ("A", "A", "tie", False),  # position bias: the orders disagree -> tie
        ("B", "B", "tie", False),
        ("A", "neither", "tie", False),
        ("neither", "A", "tie", False),
        ("neither", "B", "tie", False),
    ],
)
def test_both_orders_rule(ab: str, ba: str, outcome: str, same: bool) -> None:
    assert combine(ab, ba) == outcome
    assert consistent(ab, ba) is same


def pw(pid: str, value: str | None, ab: str | None = None, ba: str | None = None) -> Verdict:
    detail = {"ab": ab, "ba": ba} if ab or ba else {}
    return Verdict(pid, "pairwise", value, value is not None, ["raw"], detail)


def test_win_tie_loss_rates_and_invalid_count() -> None:
    values = ["win"] * 5 + ["tie"] * 3 + ["loss"] * 2 + [None]
    verdicts = [pw(str(i), v) for i, v in enumerate(values)]
    out = win_tie_loss(verdicts, resamples=1000, seed=3)
    assert (out["n"], out["invalid"]) == (10, 1)
    assert (out["win"], out["tie"], out["loss"]) == (0.5, 0.3, 0.2)
    for label in ("win", "tie", "loss"):
        lo, hi = out["ci"][label]
        assert 0 <= lo <= out[label] <= hi <= 1
    assert out["ci"]["win"][1] - out["ci"]["win"][0] > 0.2  # 10 prompts: a wide interval


def test_bootstrap_matches_a_hand_rolled_resample_and_is_seeded() -> None:
    values = ["win"] * 7 + ["tie"] * 2 + ["loss"] * 4
    verdicts = [pw(str(i), v) for i, v in enumerate(values)]
    out = win_tie_loss(verdicts, resamples=500, seed=11)
    # the same resampling written out longhand
    rng = np.random.default_rng(11)
    picks = rng.integers(0, len(values), size=(500, len(values)))
    wins = [(np.array(values)[row] == "win").mean() for row in picks]
    assert out["ci"]["win"] == pytest.approx(list(np.percentile(wins, [2.5, 97.5])))
    assert win_tie_loss(verdicts, resamples=500, seed=11) == out
    assert win_tie_loss(verdicts, resamples=500, seed=12)["ci"] != out["ci"]


def test_bootstrap_resamples_prompts_not_verdicts() -> None:
    # two verdicts of prompt "p" move together: every resample has an even count of them
    verdicts = [pw("p", "win"), pw("p", "win"), pw("q", "loss")]
    out = win_tie_loss(verdicts, resamples=300, seed=0)
    assert out["win"] == pytest.approx(2 / 3)
    assert out["ci"]["win"][0] in (0.0, pytest.approx(2 / 3)) and out["ci"]["win"][1] == 1.0


def test_bootstrap_clusters_multi_turn_prompts() -> None:
    # two prompts of ten turns each, one all "win", one all "loss": a resample picks two whole
    # prompts, so the win rate is 0, 0.5 or 1 (P = 1/4, 1/2, 1/4) and the 95% CI is [0, 1];
    # resampling the 20 verdicts one by one would give about [0.3, 0.7]
    verdicts = [pw("p", "win") for _ in range(10)] + [pw("q", "loss") for _ in range(10)]
    for i, verdict in enumerate(verdicts):
        verdict.turn = i % 10 + 1  # turns of one prompt share its prompt_id
    out = win_tie_loss(verdicts, resamples=2000, seed=5)
    assert out["win"] == 0.5 and out["n"] == 20
    assert out["ci"]["win"] == [0.0, 1.0]
    assert out["ci"]["loss"] == [0.0, 1.0]
    assert out["ci"]["score"] == [0.0, 1.0]
    # and it is exactly a hand-rolled resample of prompts (clusters)
    rng = np.random.default_rng(5)
    picks = rng.integers(0, 2, size=(2000, 2))
    per_prompt = np.array([[10, 0, 0], [0, 0, 10]])
    sampled = per_prompt[picks].sum(axis=1)
    wins = sampled[:, 0] / sampled.sum(axis=1)
    assert out["ci"]["win"] == pytest.approx(list(np.percentile(wins, [2.5, 97.5])))


def test_win_tie_loss_with_nothing_valid() -> None:
    out = win_tie_loss([pw("a", None)])
    assert out["n"] == 0 and out["invalid"] == 1 and out["win"] is None


def test_distribution_counts_shares_and_likert_mean() -> None:
    likert = [Verdict(str(i), "likert", v, True, []) for i, v in enumerate([6, 5, 5, 2])]
    likert.append(Verdict("x", "likert", None, False, ["garbage"]))
    out = distribution(likert)
    assert out["n"] == 4 and out["invalid"] == 1
    assert out["counts"] == {"1": 0, "2": 1, "3": 0, "4": 0, "5": 2, "6": 1}
    assert out["shares"]["5"] == 0.5 and out["mean"] == 4.5
    absolute = [
        Verdict(str(i), "absolute", v, True, [])
        for i, v in enumerate(["fail", "pass", "pass", "excellent", "excellent", "excellent"])
    ]
    assert distribution(absolute)["shares"] == {"fail": 1 / 6, "pass": 2 / 6, "excellent": 0.5}
    safety = [Verdict("a", "safety", "safe", True, []), Verdict("b", "safety", "unsafe", True, [])]
    assert distribution(safety)["shares"]["safe"] == 0.5
    with pytest.raises(ValueError, match="mix protocols"):
        distribution(likert + safety)


def test_tie_discounted_accuracy_and_kappa_by_hand() -> None:
    a = ["win", "win", "tie", "loss", "loss", "tie", "win", "loss"]
    b = ["win", "tie", "tie", "win", "loss", "loss", "win", "loss"]
    # points: 1, .5, 1, 0, 1, .5, 1, 1 = 6 / 8
    # observed = 5/8; marginals a: win 3 tie 2 loss 3; b: win 3 tie 2 loss 3
    # expected = (9 + 4 + 9) / 64 = 22/64; kappa = (40/64 - 22/64) / (42/64) = 18/42
    left = [pw(str(i), v) for i, v in enumerate(a)] + [pw("only-left", "win")]
    right = [pw(str(i), v) for i, v in enumerate(b)] + [pw("7x", None)]
    out = agreement(left, right)
    assert out["n"] == 8
    assert out["tie_discounted_accuracy"] == 0.75
    assert out["exact"] == 5 / 8
    assert out["kappa"] == pytest.approx(18 / 42)


def test_kappa_edge_cases() -> None:
    same = [pw("a", "win"), pw("b", "win")]
    assert agreement(same, same)["kappa"] is None  # chance agreement is 1: undefined
    assert agreement(same, [])["n"] == 0
    opposite = agreement([pw("a", "win"), pw("b", "loss")], [pw("a", "loss"), pw("b", "win")])
    assert opposite["tie_discounted_accuracy"] == 0 and opposite["kappa"] == pytest.approx(-1)


def test_position_consistency() -> None:
    verdicts = [
        pw("1", "win", "A", "B"),  # consistent
        pw("2", "tie", "A", "A"),  # inconsistent
        pw("3", "tie", "neither", "neither"),  # consistent
        pw("4", "tie", "neither", "B"),  # inconsistent
        pw("5", None, "A", None),  # one order unparsed: not counted
    ]
    assert position_consistency(verdicts) == 0.5
    assert position_consistency([pw("5", None)]) is None
    assert not math.isnan(position_consistency(verdicts[:1]))


def test_position_summary_is_na_for_a_symmetric_judge() -> None:
    # both orders agree on every item: measured, the consistency would read 1.0 and mean nothing
    verdicts = [pw("1", "win", "A", "B"), pw("2", "loss", "B", "A")]
    assert position_summary(verdicts, symmetric=True) == {
        "position_consistency": None,
        "position_consistency_note": "n/a: symmetric judge",
    }
    assert position_summary(verdicts, symmetric=False) == {"position_consistency": 1.0}
    mixed = [*verdicts, pw("3", "tie", "A", "A")]
    assert position_summary(mixed, symmetric=False)["position_consistency"] == pytest.approx(2 / 3)
