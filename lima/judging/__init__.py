"""Judging answers as the LIMA paper did: pairwise in both orders, Fail/Pass/Excellent, the 1-6
Likert scale and safety, by an OpenAI-compatible endpoint, a local HF model, or the embedded
`reference` proxy. Every verdict is cached in the artifact store. See docs/judging.md."""

from lima.judging.aggregate import agreement, distribution, position_consistency, win_tie_loss
from lima.judging.cache import JudgeError
from lima.judging.factory import make_judge
from lima.judging.types import PROTOCOLS, Item, Judge, Verdict

__all__ = [
    "PROTOCOLS",
    "Item",
    "Judge",
    "JudgeError",
    "Verdict",
    "agreement",
    "distribution",
    "make_judge",
    "position_consistency",
    "win_tie_loss",
]
