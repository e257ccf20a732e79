"""The both-orders rule for pairwise judging.

Each pairwise item is asked twice: order `ab` shows the tested answer as "A" and the baseline as
"B"; order `ba` swaps them. A judge's label ("A", "B", "neither") is first mapped to the tested
answer's side, then the two orders are combined: equal sides stand, any disagreement is a tie
(MT-Bench's rule for position bias, Zheng et al. 2023, Section 3.4).
"""

from __future__ import annotations

PAIR_LABELS = ("A", "B", "neither")

_SIDE = {
    "ab": {"A": "win", "B": "loss", "neither": "tie"},
    "ba": {"A": "loss", "B": "win", "neither": "tie"},
}


def side(order: str, label: str) -> str:
    """The tested answer's outcome ("win"/"tie"/"loss") for a label given in `order`."""
    return _SIDE[order][label]


def combine(ab: str, ba: str) -> str:
    """Outcome after both orders: the shared outcome when they agree, else "tie"."""
    first, second = side("ab", ab), side("ba", ba)
    return first if first == second else "tie"


def consistent(ab: str, ba: str) -> bool:
    """The two orders name the same outcome for the tested answer (no position effect)."""
    return side("ab", ab) == side("ba", ba)
