"""Done-when of the judging issue: on realistic answers, a scripted LLM endpoint replying in the
LIMA paper's format gives the same aggregates as FastChat's `show_result.py` computes from the
same judgments; multi-turn items carry both whole conversations; MT-Bench single grading gives
FastChat's per-turn means.

The oracle below is FastChat's aggregation rule, written out with pandas as FastChat does it:
pairwise rows with an `error` in either game are dropped; a tie in game 1 or games that disagree
is a tie for both models; win_rate = win / n, loss_rate = loss / n, win_rate_adjusted =
(win + tie/2) / n. Single: scores of -1 (unparsed) dropped, mean per turn and overall.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from scripted_endpoint import Reply, ScriptedEndpoint

from lima.generation.prompt_sets import PromptRecord
from lima.judging import distribution, items_for, make_judge, win_tie_loss
from lima.settings import Settings
from lima.spec.evaluate import JudgeSpec

FIXTURE = json.loads((Path(__file__).parent / "fixtures/judging/realistic.json").read_text())
PROMPTS = FIXTURE["prompts"]
OPTION = {
    "A": "Answer A is significantly better.",
    "B": "Answer B is significantly better.",
    "tie": "Neither is significantly better.",
}


def _records(system: str) -> dict[str, dict[str, Any]]:
    return {
        p["id"]: {
            "id": p["id"],
            "turns": [
                {"prompt": q, "answer": a, "finish_reason": "eot"}
                for q, a in zip(p["turns"], p[system], strict=True)
            ],
        }
        for p in PROMPTS
    }


def _prompt_records() -> list[PromptRecord]:
    return [
        PromptRecord(p["id"], p["turns"], p.get("references", []), p["category"]) for p in PROMPTS
    ]


def _locate(text: str) -> tuple[dict[str, Any], int]:
    """Which prompt and turn a judge message is about (the last user turn it shows)."""
    prompt = next(p for p in PROMPTS if p["turns"][0] in text)
    turn = max(k for k, q in enumerate(prompt["turns"]) if q in text)
    return prompt, turn


class PaperJudge:
    """Replies as LIMA's annotators answered (one of the three options), with reasoning first;
    preferences and ratings scripted per prompt and order by the fixture."""

    def __init__(self) -> None:
        self.multi_turn_messages: list[str] = []

    def __call__(self, body: dict[str, Any]) -> Reply:
        text = "\n".join(m["content"] for m in body["messages"] if m["role"] in {"system", "user"})
        prompt, turn = _locate(text)
        suffix = "" if turn == 0 else str(turn + 1)
        if "Which answer best satisfies your needs?" in text:
            if turn:
                self.multi_turn_messages.append(text)
            lima, base = prompt["lima"][turn], prompt["base"][turn]
            order = "ab" if text.index(lima) < text.index(base) else "ba"
            preferred = prompt["prefer"][order + suffix]
            if preferred == "garbage":
                return Reply("Both answers have merits and drawbacks.")
            shown_first = "lima" if order == "ab" else "base"
            letter = "tie" if preferred == "tie" else ("A" if preferred == shown_first else "B")
            return Reply(f"Answer {shown_first} reads as it does.\n\n{OPTION[letter]}")
        if "helpfulness:" in text:  # the Appendix D rubric: reasoning, then the bare score twice
            score = prompt["likert"][turn]
            return Reply("hmm" if score == "garbage" else f"Step by step...\n{score}\n{score}")
        score = prompt["score"][turn]  # MT-Bench single grading
        return Reply("no rating" if score == "garbage" else f"Good answer.\nRating: [[{score}]]")


def fastchat_pairwise(rows: list[dict[str, str]]) -> dict[str, float]:
    """FastChat show_result.display_result_pairwise for model `lima` vs baseline `base`."""
    df_all = pd.DataFrame(rows)
    df_all = df_all[(df_all["g1_winner"] != "error") & (df_all["g2_winner"] != "error")]
    results = []
    for _, row in df_all.iterrows():
        if row["g1_winner"] == "tie" or row["g1_winner"] != row["g2_winner"]:
            results += [
                {"model": row["model_1"], "win": 0, "loss": 0, "tie": 1},
                {"model": row["model_2"], "win": 0, "loss": 0, "tie": 1},
            ]
        else:
            winner, loser = (
                (row["model_1"], row["model_2"])
                if row["g1_winner"] == "model_1"
                else (row["model_2"], row["model_1"])
            )
            results += [
                {"model": winner, "win": 1, "loss": 0, "tie": 0},
                {"model": loser, "win": 0, "loss": 1, "tie": 0},
            ]
    df = pd.DataFrame(results).groupby(["model"]).sum()
    n = df["win"] + df["loss"] + df["tie"]
    df["win_rate"] = df["win"] / n
    df["loss_rate"] = df["loss"] / n
    df["win_rate_adjusted"] = (df["win"] + 0.5 * df["tie"]) / n
    return df.loc["lima"].to_dict()


def _games() -> list[dict[str, str]]:
    """FastChat judgment rows from the fixture's script (game 2 shows the answers swapped)."""
    name = {"lima": "model_1", "base": "model_2", "tie": "tie", "garbage": "error"}
    rows = []
    for p in PROMPTS:
        for turn in range(len(p["turns"])):
            suffix = "" if turn == 0 else str(turn + 1)
            rows.append(
                {
                    "model_1": "lima",
                    "model_2": "base",
                    "g1_winner": name[p["prefer"]["ab" + suffix]],
                    "g2_winner": name[p["prefer"]["ba" + suffix]],
                }
            )
    return rows


@pytest.fixture
def endpoint():
    script = PaperJudge()
    with ScriptedEndpoint(script) as server:
        server.script = script
        yield server


def _judge(tmp_path: Path, url: str, prompts: str = "lima"):
    settings = Settings(work_dir=tmp_path / "w", judge_base_url=url, _env_file=None)
    spec = JudgeSpec(backend="openai", model="scripted", prompts=prompts, max_retries=0)
    return make_judge(spec, settings)


def test_pairwise_aggregates_match_fastchat(tmp_path: Path, endpoint) -> None:
    items = items_for(_prompt_records(), _records("lima"), _records("base"))
    assert len(items) == 10  # 8 prompts, two of them with a second turn
    verdicts = _judge(tmp_path, endpoint.url).judge("pairwise", items)
    ours = win_tie_loss(verdicts, resamples=200)
    theirs = fastchat_pairwise(_games())
    assert ours["n"] == theirs["win"] + theirs["loss"] + theirs["tie"] == 9
    assert ours["invalid"] == 1  # the garbage order of r1, after its one follow-up
    assert ours["win"] == pytest.approx(theirs["win_rate"])
    assert ours["loss"] == pytest.approx(theirs["loss_rate"])
    assert ours["score"] == pytest.approx(theirs["win_rate_adjusted"])
    lo, hi = ours["ci"]["score"]
    assert lo <= ours["score"] <= hi


def test_turn_two_is_judged_with_both_whole_conversations(tmp_path: Path, endpoint) -> None:
    items = items_for(_prompt_records(), _records("lima"), _records("base"))
    _judge(tmp_path, endpoint.url).judge("pairwise", [i for i in items if i.turn == 2])
    seen = endpoint.script.multi_turn_messages
    assert len(seen) == 4  # two prompts x two orders
    for prompt in (p for p in PROMPTS if len(p["turns"]) == 2):
        for text in (t for t in seen if prompt["turns"][1] in t):
            assert prompt["lima"][0] in text and prompt["base"][0] in text  # both earlier answers
            assert prompt["lima"][1] in text and prompt["base"][1] in text


def test_turns_of_a_prompt_are_one_bootstrap_cluster() -> None:
    items = items_for(_prompt_records(), _records("lima"), _records("base"))
    assert {(i.prompt_id, i.turn) for i in items if i.prompt_id == "w2"} == {("w2", 1), ("w2", 2)}
    assert len({i.prompt_id for i in items}) == len(PROMPTS)


def test_single_grading_means_match_fastchat(tmp_path: Path, endpoint) -> None:
    items = items_for(_prompt_records(), _records("lima"))
    verdicts = _judge(tmp_path, endpoint.url, prompts="mt-bench").judge("single", items)
    scores = [
        {"model": "lima", "turn": turn + 1, "score": -1 if s == "garbage" else s}
        for p in PROMPTS
        for turn, s in enumerate(p["score"])
    ]
    df = pd.DataFrame(scores)
    df = df[df["score"] != -1]
    for turn in (1, 2):
        expected = df[df["turn"] == turn].groupby(["model", "turn"]).mean()["score"].iloc[0]
        assert distribution([v for v in verdicts if v.turn == turn])["mean"] == pytest.approx(
            expected
        )
    assert distribution(verdicts)["mean"] == pytest.approx(df["score"].mean())
    assert distribution(verdicts)["invalid"] == 1


def test_lima_likert_bare_scores_are_read(tmp_path: Path, endpoint) -> None:
    items = items_for(_prompt_records(), _records("lima"))
    verdicts = _judge(tmp_path, endpoint.url).judge("likert", items)
    expected = [s for p in PROMPTS for s in p["likert"]]
    assert [v.value for v in verdicts] == [None if s == "garbage" else s for s in expected]
