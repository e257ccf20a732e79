"""From answer records to judging items: one `Item` per answered turn.

Turn k of a multi-turn prompt is judged with the conversation before it: the earlier user turns
and, for each system, its OWN earlier answers (so "rewrite your previous response" can be
judged, as MT-Bench shows both whole conversations). All turns of a prompt share its id, so the
bootstrap resamples prompts, not turns.
"""

from __future__ import annotations

from typing import Any

from lima.judging.types import Item, Turn

Record = dict[str, Any]
"""An answer record: `{"id", "turns": [{"prompt", "answer", "finish_reason", ...}]}`."""


def _reference(prompt: Any, turn: int) -> str | None:
    references = getattr(prompt, "references", None) or []
    return references[turn] if turn < len(references) else None


def items_for(
    prompts: list[Any], answers: dict[str, Record], others: dict[str, Record] | None = None
) -> list[Item]:
    """Items for every turn `answers` has (and, with `others`, that both systems answered).

    `prompts` are `PromptRecord`s (`id`, `turns`, `references`, `tags`, `category`).
    """
    items: list[Item] = []
    for prompt in prompts:
        mine = answers.get(prompt.id)
        theirs = others.get(prompt.id) if others is not None else None
        if mine is None or (others is not None and theirs is None):
            continue
        history: list[Turn] = []
        for turn, record in enumerate(mine["turns"]):
            other = theirs["turns"][turn] if theirs and turn < len(theirs["turns"]) else None
            if others is not None and other is None:
                break  # a later turn cannot be judged without the baseline's earlier answer
            items.append(
                Item(
                    prompt_id=prompt.id,
                    prompt=record.get("prompt") or prompt.turns[turn],
                    answer=record["answer"],
                    other=other["answer"] if other else None,
                    reference=_reference(prompt, turn),
                    finished=record["finish_reason"] != "length",
                    other_finished=bool(other) and other["finish_reason"] != "length",
                    tags=[*prompt.tags, *([prompt.category] if prompt.category else [])],
                    turn=turn + 1,
                    history=list(history),
                )
            )
            history.append(
                Turn(
                    user=items[-1].prompt,
                    answer=record["answer"],
                    other=other["answer"] if other else None,
                    reference=_reference(prompt, turn),
                )
            )
    return items


def turn_count(prompts: list[Any]) -> int:
    return sum(len(p.turns) for p in prompts)
