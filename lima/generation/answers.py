"""Answer records and the answer files of other systems.

An answer record (one JSON line of `answers/<set>/<system>.jsonl`):

    {"id", "system", "model", "engine",
     "prompt_format": "lima"|"chat_template"|"completion"|"supplied",
     "turns": [{"prompt", "answer", "finish_reason": "eot"|"length"|"supplied",
                "prompt_tokens", "answer_tokens", "seed"}]}

Records hold content only, never wall-clock time: answer files are hashed into the keys of every
downstream artifact, so a re-run that answers the same must write the same bytes.

The judging items made from these records (one per answered turn) are built by
`lima.judging.items.items_for`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lima.generation.prompt_sets import PromptRecord, Rejected


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            count += 1
    return count


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _supplied_turns(raw: dict[str, Any]) -> list[str]:
    """Answer texts of one row of another system's answer file (three layouts)."""
    if isinstance(raw.get("answer"), str):
        return [raw["answer"]]
    answers = raw.get("answers")
    if isinstance(answers, list) and answers and all(isinstance(a, str) for a in answers):
        return list(answers)
    choices = raw.get("choices")  # FastChat's model_answer layout (MT-Bench / Vicuna)
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        turns = choices[0].get("turns")
        if isinstance(turns, list) and turns and all(isinstance(t, str) for t in turns):
            return list(turns)
    raise ValueError("no `answer` string, `answers` list or FastChat `choices[0].turns`")


def read_answer_file(
    path: Path, system: str, prompts: list[PromptRecord]
) -> tuple[list[dict[str, Any]], list[Rejected]]:
    """Records of another system's answers for `prompts`, matched by id; rejects with reasons.

    Prompts without an answer are simply not answered by that system (the judge stage compares
    only prompts both systems answered and reports how many were missing).
    """
    wanted = {p.id: p for p in prompts}
    found: dict[str, dict[str, Any]] = {}
    rejected: list[Rejected] = []
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            where = f"{path.name}:{number}"
            try:
                raw = json.loads(text)
                if not isinstance(raw, dict):
                    raise ValueError("row is not a JSON object")
                rid = raw.get("id", raw.get("question_id"))
                if rid is None:
                    raise ValueError("`id` (or `question_id`) is missing")
                turns = _supplied_turns(raw)
            except (json.JSONDecodeError, ValueError) as error:
                rejected.append(Rejected(number, f"{where}: {error}", text[:500]))
                continue
            prompt = wanted.get(str(rid))
            if prompt is None:
                continue  # an answer to a prompt outside this set
            found[prompt.id] = supplied_record(prompt, turns, system)
    return [found[p.id] for p in prompts if p.id in found], rejected


def supplied_record(prompt: PromptRecord, answers: list[str], system: str) -> dict[str, Any]:
    turns = [
        {
            "prompt": user,
            "answer": text,
            "finish_reason": "supplied",
            "prompt_tokens": None,
            "answer_tokens": None,
            "seed": None,
        }
        for user, text in zip(prompt.turns, answers, strict=False)
    ]
    return {
        "id": prompt.id,
        "system": system,
        "model": "supplied",
        "engine": "file",
        "prompt_format": "supplied",
        "turns": turns,
    }


def answer_stats(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts for summaries and the report: answers, finish reasons, tokens."""
    turns = [t for r in records for t in r["turns"]]
    reasons: dict[str, int] = {}
    for turn in turns:
        reasons[turn["finish_reason"]] = reasons.get(turn["finish_reason"], 0) + 1
    tokens = [t["answer_tokens"] for t in turns if t.get("answer_tokens") is not None]
    formats = sorted({str(r.get("prompt_format")) for r in records if r.get("prompt_format")})
    return {
        "prompts": len(records),
        "prompt_formats": formats,
        "turns": len(turns),
        "finish_reasons": reasons,
        "answer_tokens": sum(tokens),
        "mean_answer_tokens": round(sum(tokens) / len(tokens), 2) if tokens else None,
    }
