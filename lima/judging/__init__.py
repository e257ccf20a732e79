"""Judging answers as the LIMA paper did (pairwise in both orders, Fail/Pass/Excellent, the 1-6
Likert rubric, safety) or as MT-Bench does, by an OpenAI-compatible endpoint, a local HF model,
or the embedded `reference` proxy. Every valid verdict is cached in the artifact store.
See docs/judging.md."""

from lima.judging.aggregate import (
    agreement,
    distribution,
    position_consistency,
    position_summary,
    win_tie_loss,
)
from lima.judging.cache import JudgeError
from lima.judging.factory import make_judge
from lima.judging.items import items_for
from lima.judging.types import PROTOCOLS, Item, Judge, Turn, Verdict

__all__ = [
    "PROTOCOLS",
    "Item",
    "Judge",
    "JudgeError",
    "Turn",
    "Verdict",
    "agreement",
    "distribution",
    "items_for",
    "make_judge",
    "position_consistency",
    "position_summary",
    "win_tie_loss",
]
