"""The HF engine: EOT stop after fine-tuning, left padding, per-prompt seeds, multi-turn."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from eval_helpers import QA

from lima.generation.decoding import DecodeConfig, GeneratedTokensRepetitionPenalty, seed_for
from lima.generation.hf_engine import HFEngine
from lima.generation.prompt_sets import PromptRecord

GREEDY = DecodeConfig(max_new_tokens=16, do_sample=False, batch_size=8)

pytest_plugins = ["eval_fixtures"]  # the tuned_model / base_model fixtures


def records() -> list[PromptRecord]:
    return [PromptRecord(f"q{i}", [q], [a]) for i, (q, a) in enumerate(QA)]


def test_tiny_model_stops_at_eot_after_finetuning(tuned_model: Path) -> None:
    engine = HFEngine(tuned_model, DecodeConfig(max_new_tokens=24))  # paper sampling settings
    answers = engine.answer(records())
    for answer in answers:
        turn = answer["turns"][0]
        assert turn["finish_reason"] == "eot"
        assert turn["answer_tokens"] < 24
        assert turn["prompt_tokens"] > 3
    greedy = HFEngine(tuned_model, GREEDY).answer(records())
    assert [a["turns"][0]["answer"] for a in greedy] == [a for _, a in QA]


def test_untrained_model_hits_the_length_limit(base_model: Path) -> None:
    engine = HFEngine(base_model, DecodeConfig(max_new_tokens=5, do_sample=False))
    turn = engine.answer(records()[:2])[0]["turns"][0]
    assert turn["finish_reason"] == "length"
    assert turn["answer_tokens"] == 5


def test_left_padded_batch_matches_one_prompt_at_a_time(base_model: Path) -> None:
    prompts = [PromptRecord(f"p{i}", ["word " * (1 + 3 * i) + "?"]) for i in range(5)]
    batched = HFEngine(base_model, GREEDY).answer(prompts)
    single = HFEngine(base_model, DecodeConfig(max_new_tokens=16, do_sample=False, batch_size=1))
    alone = single.answer(prompts)
    widths = {t["prompt_tokens"] for a in batched for t in a["turns"]}
    assert len(widths) == 5  # different lengths: the batch really was padded
    assert [a["turns"][0]["answer"] for a in batched] == [a["turns"][0]["answer"] for a in alone]


def test_sampling_is_seeded_per_prompt_not_per_batch(base_model: Path) -> None:
    prompts = [PromptRecord(f"p{i}", [f"tell me about thing {i}"]) for i in range(6)]
    config = DecodeConfig(max_new_tokens=12, batch_size=6)
    first = HFEngine(base_model, config).answer(prompts)
    regrouped = HFEngine(base_model, DecodeConfig(max_new_tokens=12, batch_size=4))
    again = regrouped.answer(list(reversed(prompts)))[::-1]
    texts = [a["turns"][0]["answer"] for a in first]
    assert texts == [a["turns"][0]["answer"] for a in again]
    other = HFEngine(base_model, DecodeConfig(max_new_tokens=12, seed=1)).answer(prompts)
    assert texts != [a["turns"][0]["answer"] for a in other]
    assert first[0]["turns"][0]["seed"] == seed_for(0, "p0", 0)


def test_multi_turn_answers_turn_by_turn(tuned_model: Path) -> None:
    from lima.generation.hf_engine import chat_spec
    from lima.models.chat import encode_prompt

    engine = HFEngine(tuned_model, GREEDY)
    record = PromptRecord("mt", [QA[0][0], QA[1][0]], [QA[0][1], QA[1][1]])
    single = PromptRecord("s", [QA[2][0]])
    answer = engine.answer([record, single])[0]
    first, second = answer["turns"]
    assert first["answer"] == QA[0][1]
    expected = encode_prompt(
        [QA[0][0], first["answer"], QA[1][0]], engine.tokenizer, chat_spec(tuned_model)
    )
    assert second["prompt_tokens"] == len(expected)  # turn 2 saw turn 1's answer
    assert second["prompt"] == QA[1][0]
    assert second["finish_reason"] in {"eot", "length"}


def test_repetition_penalty_covers_generated_tokens_only() -> None:
    from transformers import RepetitionPenaltyLogitsProcessor

    input_ids = torch.tensor([[5, 6, 7, 8]])  # prompt = 5, 6; generated = 7, 8
    scores = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0, 2.4, -2.4, 2.4, -2.4, 1.0]])
    ours = GeneratedTokensRepetitionPenalty(1.2, prompt_length=2)(input_ids, scores.clone())
    assert ours[0, 5] == pytest.approx(2.4) and ours[0, 6] == pytest.approx(-2.4)  # prompt: kept
    assert ours[0, 7] == pytest.approx(2.0) and ours[0, 8] == pytest.approx(-2.88)  # generated
    assert ours[0, 9] == pytest.approx(1.0)
    hf = RepetitionPenaltyLogitsProcessor(1.2)(input_ids, scores.clone())
    assert hf[0, 5] == pytest.approx(2.0)  # HF's processor also penalises the prompt
    unchanged = GeneratedTokensRepetitionPenalty(1.2, prompt_length=4)(input_ids, scores.clone())
    assert torch.equal(unchanged, scores)


WALL_CLOCK = {"latency_s", "batch_wall_s", "wall_s", "duration_s", "cached"}


def test_answer_records_are_content_only_and_repeat_exactly(tuned_model: Path) -> None:
    """Answer files are hashed into downstream keys: a re-run must write the same records."""
    import json

    first = HFEngine(tuned_model, DecodeConfig(max_new_tokens=12)).answer(records())
    again = HFEngine(tuned_model, DecodeConfig(max_new_tokens=12, batch_size=3)).answer(records())
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    for answer in first:
        assert answer["prompt_format"] == "lima"
        assert not WALL_CLOCK & set(answer)
        assert not WALL_CLOCK & {k for t in answer["turns"] for k in t}
