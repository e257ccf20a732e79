"""Every judge prompt rendered against a golden file, MT-Bench's against FastChat's own
templates, and multi-turn questions carrying both whole conversations.

Regenerate the golden files after an intended wording change with
`LIMA_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_judging_prompts.py` and review the
diff: the files are what a judge model is shown.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lima.judging.prompts import PROTOCOL_SETS, messages
from lima.judging.types import Item, Turn
from lima.spec.evaluate import PROMPT_SET_PROTOCOLS

GOLDEN = Path(__file__).parent / "fixtures" / "judging" / "prompts"

GENERAL = Item("g1", "Write a haiku about rain.", "Rain taps the tin roof", other="Rain is wet.")
MATH = Item("m1", "What is 2+3?", "It is 5.", other="It is 6.", reference="5", tags=["math"])
MULTI = Item(
    "g2",
    "Now rewrite it about snow.",
    "Snow hushes the street",
    other="Snow is cold.",
    turn=2,
    history=[Turn("Write a haiku about rain.", "Rain taps the tin roof", "Rain is wet.")],
)
MULTI_MATH = Item(
    "m2",
    "Now double it.",
    "10",
    other="12",
    reference="10",
    tags=["math"],
    turn=2,
    history=[Turn("What is 2+3?", "5", "6", reference="5")],
)
CASES = {
    "lima/pairwise": ("lima", "pairwise", GENERAL, "ab"),
    "lima/pairwise-multi-turn": ("lima", "pairwise", MULTI, "ba"),
    "lima/absolute": ("lima", "absolute", GENERAL, "single"),
    "lima/absolute-multi-turn": ("lima", "absolute", MULTI, "single"),
    "lima/likert": ("lima", "likert", GENERAL, "single"),
    "lima/likert-multi-turn": ("lima", "likert", MULTI, "single"),
    "lima/safety": ("lima", "safety", GENERAL, "single"),
    "mt-bench/pairwise": ("mt-bench", "pairwise", GENERAL, "ab"),
    "mt-bench/pairwise-reference": ("mt-bench", "pairwise", MATH, "ab"),
    "mt-bench/pairwise-multi-turn": ("mt-bench", "pairwise", MULTI, "ba"),
    "mt-bench/pairwise-reference-multi-turn": ("mt-bench", "pairwise", MULTI_MATH, "ab"),
    "mt-bench/single": ("mt-bench", "single", GENERAL, "single"),
    "mt-bench/single-reference": ("mt-bench", "single", MATH, "single"),
    "mt-bench/single-multi-turn": ("mt-bench", "single", MULTI, "single"),
    "mt-bench/single-reference-multi-turn": ("mt-bench", "single", MULTI_MATH, "single"),
}


def _text(rendered: list[dict[str, str]]) -> str:
    return "".join(f"--- {m['role']} ---\n{m['content']}\n" for m in rendered)


@pytest.mark.parametrize("name", sorted(CASES))
def test_prompt_matches_its_golden_file(name: str) -> None:
    protocol_set, protocol, item, order = CASES[name]
    text = _text(messages(protocol_set, protocol, item, order))
    golden = GOLDEN / f"{name}.txt"
    if os.environ.get("LIMA_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


# FastChat's prompt_template strings (fastchat/llm_judge/data/judge_prompts.jsonl)
PAIR_V2 = (
    "[User Question]\n{question}\n\n[The Start of Assistant A's Answer]\n{answer_a}\n"
    "[The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\n{answer_b}\n"
    "[The End of Assistant B's Answer]"
)
PAIR_MULTI = (
    "<|The Start of Assistant A's Conversation with User|>\n\n### User:\n{question_1}\n\n"
    "### Assistant A:\n{answer_a_1}\n\n### User:\n{question_2}\n\n### Assistant A:\n{answer_a_2}"
    "\n\n<|The End of Assistant A's Conversation with User|>\n\n\n"
    "<|The Start of Assistant B's Conversation with User|>\n\n### User:\n{question_1}\n\n"
    "### Assistant B:\n{answer_b_1}\n\n### User:\n{question_2}\n\n### Assistant B:\n{answer_b_2}"
    "\n\n<|The End of Assistant B's Conversation with User|>"
)
SINGLE_MATH = (
    "[Question]\n{question}\n\n[The Start of Reference Answer]\n{ref_answer_1}\n"
    "[The End of Reference Answer]\n\n[The Start of Assistant's Answer]\n{answer}\n"
    "[The End of Assistant's Answer]"
)


def test_mt_bench_prompts_are_fastchats() -> None:
    [system, user] = messages("mt-bench", "pairwise", GENERAL, "ab")
    assert system["content"].startswith("Please act as an impartial judge")
    assert user["content"] == PAIR_V2.format(
        question=GENERAL.prompt, answer_a=GENERAL.answer, answer_b=GENERAL.other
    )
    [_, user] = messages("mt-bench", "pairwise", MULTI, "ab")
    earlier = MULTI.history[0]
    assert user["content"] == PAIR_MULTI.format(
        question_1=earlier.user,
        answer_a_1=earlier.answer,
        question_2=MULTI.prompt,
        answer_a_2=MULTI.answer,
        answer_b_1=earlier.other,
        answer_b_2=MULTI.other,
    )
    [system, user] = messages("mt-bench", "single", MATH, "single")
    assert system["content"] == "You are a helpful assistant."
    assert user["content"].endswith(
        SINGLE_MATH.format(question=MATH.prompt, ref_answer_1="5", answer=MATH.answer)
    )


def test_turn_two_shows_both_whole_conversations_in_each_order() -> None:
    for protocol_set in PROTOCOL_SETS:
        for order, (a, b) in {
            "ab": ("Rain taps", "Rain is wet"),
            "ba": ("Rain is wet", "Rain taps"),
        }.items():
            text = _text(messages(protocol_set, "pairwise", MULTI, order))
            # each assistant's own earlier answer comes before its own current answer
            first_a, first_b = text.index(a), text.index(b)
            assert first_a < first_b, (protocol_set, order)
            assert text.count("Write a haiku about rain.") == 2


def test_reference_only_for_math_reasoning_coding() -> None:
    general_with_reference = Item("g", "Write a poem.", "A poem.", other="Another.", reference="x")
    assert "Reference" not in _text(messages("mt-bench", "pairwise", general_with_reference, "ab"))
    assert "Reference Answer" in _text(messages("mt-bench", "pairwise", MATH, "ab"))


def test_the_spec_and_the_templates_agree_on_each_sets_questions() -> None:
    assert {k: tuple(v) for k, v in PROTOCOL_SETS.items()} == PROMPT_SET_PROTOCOLS
    for protocol_set, protocols in PROTOCOL_SETS.items():
        for protocol in protocols:
            assert messages(protocol_set, protocol, GENERAL, "ab")
    with pytest.raises(ValueError, match="no 'likert' question"):
        messages("mt-bench", "likert", GENERAL, "single")
