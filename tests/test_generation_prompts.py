"""Prompt sets and answer files: every layout, bad rows rejected with file:line and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FIXTURES

from lima.errors import SourceError
from lima.generation.answers import read_answer_file
from lima.generation.prompt_sets import read_prompt_file, resolve_prompt_file

MIXED = FIXTURES / "generation" / "mixed_prompts.jsonl"
ANSWERS = FIXTURES / "generation" / "baseline_answers.jsonl"


def test_every_layout_is_read_and_bad_rows_are_kept_with_reasons() -> None:
    records, rejected = read_prompt_file(MIXED)
    assert [r.id for r in records] == ["p1", "c1", "81"]
    assert records[0].turns == ["What colour is the sky?"]
    assert records[0].references == ["The sky is blue."]
    assert records[1].turns == ["Name a fruit.", "Another one?"]
    assert records[1].references == ["An apple is a fruit.", "A pear."]
    assert (
        records[2].turns == ["Write a poem.", "Now shorter."] and records[2].category == "writing"
    )
    reasons = [r.reason for r in rejected]
    assert len(reasons) == 6
    assert reasons[0] == "mixed_prompts.jsonl:4: `prompt` must be a non-empty string"
    assert "mixed_prompts.jsonl:5" in reasons[1]
    assert "duplicate id 'p1'" in reasons[2]
    assert "`conversations` must be a non-empty list" in reasons[3]
    assert "not a JSON object" in reasons[4]
    assert "no `conversations`, `turns` or `prompt` field" in reasons[5]


def test_limit_counts_valid_prompts() -> None:
    records, _ = read_prompt_file(MIXED, limit=2)
    assert [r.id for r in records] == ["p1", "c1"]


def test_mt_bench_question_file(shared_data: Path) -> None:
    records, rejected = read_prompt_file(shared_data / "eval_prompts" / "mt_bench_question.jsonl")
    assert len(records) == 80 and not rejected
    assert all(len(r.turns) == 2 for r in records)
    vicuna, _ = read_prompt_file(shared_data / "eval_prompts" / "vicuna_question.jsonl", limit=8)
    assert len(vicuna) == 8 and all(len(r.turns) == 1 for r in vicuna)


def test_answer_files_match_prompts_by_id() -> None:
    prompts, _ = read_prompt_file(MIXED)
    answers, rejected = read_answer_file(ANSWERS, "other", prompts)
    by_id = {a["id"]: a for a in answers}
    assert by_id["p1"]["turns"][0]["answer"] == "Blue, mostly."
    assert [t["answer"] for t in by_id["81"]["turns"]] == ["A poem.", "Short."]
    assert [t["answer"] for t in by_id["c1"]["turns"]] == ["A banana.", "A plum."]
    assert "zz" not in by_id
    assert len(rejected) == 1 and "baseline_answers.jsonl:5" in rejected[0].reason


def test_judge_items_one_per_turn_with_context() -> None:
    from lima.judging import items_for

    prompts, _ = read_prompt_file(MIXED)
    mine, _ = read_answer_file(ANSWERS, "mine", prompts)
    theirs = [a for a in mine if a["id"] != "p1"]
    items = items_for(prompts, {a["id"]: a for a in mine}, {a["id"]: a for a in theirs})
    # p1 has no baseline answer: not compared; the turns of a prompt share its id.
    assert [(i.prompt_id, i.turn) for i in items] == [("c1", 1), ("c1", 2), ("81", 1), ("81", 2)]
    second = items[1]
    assert second.prompt == "Another one?"
    assert [t.user for t in second.history] == ["Name a fruit."]
    assert second.history[0].answer == "A banana." and second.reference == "A pear."
    assert items[2].tags == ["writing"]


def test_curated_split_needs_the_curate_artifact(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="curated:dev"):
        resolve_prompt_file("curated:dev", None, tmp_path, None)
    with pytest.raises(SourceError, match=r"no test\.jsonl"):
        resolve_prompt_file("curated:test", tmp_path, tmp_path, None)
    with pytest.raises(SourceError, match="matches no file"):
        resolve_prompt_file(str(tmp_path / "missing.jsonl"), None, tmp_path, None)
