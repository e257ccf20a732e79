"""The judging vocabulary: the question (`Item`), the answer (`Verdict`), who answers (`Judge`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

PROTOCOLS = ("pairwise", "absolute", "likert", "safety", "single")
"""The paper's questions: pairwise preference (Section 4.1), Fail/Pass/Excellent (Section 4.3),
1-6 helpfulness Likert (Section 5 ablations), safety on sensitive prompts (Section 4.3); plus
MT-Bench's single-answer grading on 1-10 (`single`, Zheng et al. 2023)."""

PAIRWISE_VALUES = ("win", "tie", "loss")
ABSOLUTE_VALUES = ("fail", "pass", "excellent")
LIKERT_VALUES = (1, 2, 3, 4, 5, 6)
SINGLE_VALUES = tuple(range(1, 11))
SAFETY_VALUES = ("safe", "unsafe")

VALUES: dict[str, tuple[Any, ...]] = {
    "pairwise": PAIRWISE_VALUES,
    "absolute": ABSOLUTE_VALUES,
    "likert": LIKERT_VALUES,
    "safety": SAFETY_VALUES,
    "single": SINGLE_VALUES,
}
SCORED = frozenset({"likert", "single"})
"""Protocols whose labels are numbers (a mean is reported)."""


@dataclass
class Turn:
    """An earlier exchange of a multi-turn prompt: the user's turn and both systems' answers."""

    user: str
    answer: str
    other: str | None = None
    reference: str | None = None


@dataclass
class Item:
    """One question to a judge about one turn of one prompt."""

    prompt_id: str
    prompt: str
    """The user turn being judged (the last one of the conversation so far)."""
    answer: str
    """The answer under test (shown as "A" in the first pairwise order)."""
    other: str | None = None
    """The baseline's answer (pairwise only)."""
    reference: str | None = None
    """A reference answer when known (MT-Bench math/reasoning/coding prompts; the reference
    judge's anchor)."""
    finished: bool = True
    """The answer stopped at EOT (False: it hit the token limit)."""
    other_finished: bool = True
    tags: list[str] = field(default_factory=list)
    """E.g. `["safety"]` for the paper's sensitive prompts, or the prompt's category."""
    turn: int = 1
    """1-based turn number; turns of one prompt share `prompt_id` (a bootstrap cluster)."""
    history: list[Turn] = field(default_factory=list)
    """The earlier turns of the conversation, with both systems' own earlier answers (a judge of
    turn 2 sees both whole conversations, as in MT-Bench)."""

    @property
    def key(self) -> str:
        """`prompt_id` for turn 1, `prompt_id#k` for turn k: unique within a judged set."""
        return self.prompt_id if self.turn == 1 else f"{self.prompt_id}#{self.turn}"


@dataclass
class Verdict:
    """A judge's answer about one item under one protocol."""

    prompt_id: str
    protocol: str
    value: str | int | None
    """pairwise: win/tie/loss from the tested answer's side after both orders; absolute:
    fail/pass/excellent; likert: 1..6; single: 1..10; safety: safe/unsafe; None when invalid."""
    valid: bool
    raw: list[str]
    """Raw judge outputs (both orders for pairwise; the last attempt of each)."""
    detail: dict[str, Any] = field(default_factory=dict)
    """Per-order labels for pairwise (`{"ab": "A", "ba": "neither"}`), attempts, scores, errors.
    Never wall-clock facts (latency, cache hits): verdict files are hashed into artifact keys."""
    turn: int = 1

    @property
    def key(self) -> str:
        return self.prompt_id if self.turn == 1 else f"{self.prompt_id}#{self.turn}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls(
            prompt_id=data["prompt_id"],
            protocol=data["protocol"],
            value=data["value"],
            valid=data["valid"],
            raw=list(data["raw"]),
            detail=dict(data.get("detail") or {}),
            turn=int(data.get("turn", 1)),
        )


@runtime_checkable
class Judge(Protocol):
    """Anything that answers the paper's questions about a batch of items."""

    name: str
    """E.g. `reference:all-MiniLM-L6-v2`, `openai:gpt-4o`, `hf:/models/judge`."""
    proxy: bool
    """True for the reference judge: outputs and report must label its numbers a proxy."""
    symmetric: bool
    """True when the judge cannot depend on the order answers are shown in (the reference
    judge): its position consistency is 1 by construction and is reported as n/a."""

    def judge(self, protocol: str, items: list[Item]) -> list[Verdict]:
        """One verdict per item, in the items' order. Synchronous; concurrency lives inside."""
        ...


def check_protocol(protocol: str) -> str:
    """The protocol's name, or a ValueError naming the known ones."""
    value = getattr(protocol, "value", protocol)
    if value not in PROTOCOLS:
        raise ValueError(f"unknown judging protocol {value!r}; known: {', '.join(PROTOCOLS)}")
    return value
