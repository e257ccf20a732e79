"""Choosing the checkpoint from judged evidence, and refusing to choose without it.

Each compared epoch's row carries `asked` (items judged) and its `wtl` (valid `n`, `invalid`,
`score` = win + tie/2 with a bootstrap CI). An epoch whose share of valid verdicts is below
`min_valid` (or that was never judged) is thin evidence. With thin evidence the selection fails,
naming the judge and the invalid counts, unless an explicit fallback rule is set:
`last_epoch` (the last eligible epoch) or `lowest_dev_perplexity`. The chosen rule and the reason
are returned so the evidence, the report and the Experiment status can say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lima.errors import StageError

FALLBACKS = ("last_epoch", "lowest_dev_perplexity")


@dataclass
class Decision:
    row: dict[str, Any]
    fallback: str | None = None
    """The rule used instead of judged scores (None: chosen by score)."""
    reason: str | None = None


def thin_evidence(rows: list[dict[str, Any]], min_valid: float) -> list[str]:
    """One line per compared epoch without enough valid verdicts."""
    lines = []
    for row in rows:
        if row.get("reference"):
            continue
        asked, wtl = row.get("asked", 0), row.get("wtl") or {}
        valid = wtl.get("n", 0)
        if asked == 0 or valid / asked < min_valid:
            lines.append(f"epoch {row['epoch']}: {valid} of {asked} verdicts valid")
    return lines


def by_score(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Highest score; a draw goes to the earlier epoch (rows are in epoch order)."""
    scored = [r for r in rows if r["score"] is not None]
    if not scored:
        raise StageError("no epoch has a judged score")
    return max(scored, key=lambda r: (r["score"], -r["epoch"]))


def decide(
    rows: list[dict[str, Any]],
    judge_name: str,
    min_valid: float,
    fallback: str | None,
) -> Decision:
    if len(rows) == 1:
        return Decision(rows[0], reason="one eligible epoch: nothing to compare")
    thin = thin_evidence(rows, min_valid)
    if not thin:
        return Decision(by_score(rows))
    reason = (
        f"judge {judge_name} gave too few valid verdicts ({'; '.join(thin)}; each compared "
        f"epoch needs at least {min_valid:.0%}, spec.judge.selection_min_valid)"
    )
    if fallback is None:
        raise StageError(
            f"checkpoint selection refused: {reason}. Use a judge that answers in the required "
            "format (docs/judging.md), or set spec.judge.selection_fallback: last_epoch | "
            "lowest_dev_perplexity to choose without judged evidence"
        )
    return Decision(_fallback_row(rows, fallback), fallback, reason)


def _fallback_row(rows: list[dict[str, Any]], rule: str) -> dict[str, Any]:
    if rule == "last_epoch":
        return max(rows, key=lambda r: r["epoch"])
    if rule == "lowest_dev_perplexity":
        known = [r for r in rows if r.get("dev_perplexity") is not None]
        if not known:
            raise StageError(
                "selection_fallback is lowest_dev_perplexity but the train metrics record no "
                "dev perplexity for any eligible epoch"
            )
        return min(known, key=lambda r: (r["dev_perplexity"], r["epoch"]))
    raise StageError(f"unknown selection fallback {rule!r}; known: {', '.join(FALLBACKS)}")
