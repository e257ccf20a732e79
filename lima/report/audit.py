"""The report's per-prompt section: each judged turn with its prompt, both answers and the
judge's reasoning, so a person can audit the verdicts behind the headline numbers.

Rows come from the generate artifact (prompts and answers) and the judge artifact
(`verdicts.jsonl`): the fine-tuned system against the first baseline, pairwise reasoning of both
orders, plus the system's other ratings of the same turn. At most `LIMIT` prompts per set (the
page stays light; every verdict is in the judge artifact).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LIMIT = 40
ORDERS = {"ab": "fine-tuned answer shown as A", "ba": "fine-tuned answer shown as B"}


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _verdicts_by_turn(rows: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """(set, system, baseline, protocol, prompt id, turn) -> verdict row."""
    return {
        (r["set"], r["system"], r["baseline"], r["protocol"], r["prompt_id"], r.get("turn", 1)): r
        for r in rows
    }


def _shown(verdict: dict[str, Any] | None) -> str | None:
    if verdict is None:
        return None
    return str(verdict["value"]) if verdict["valid"] else "invalid"


def _reasoning(verdict: dict[str, Any] | None) -> list[dict[str, str]]:
    if verdict is None:
        return []
    raw = verdict.get("raw") or []
    if verdict["protocol"] == "pairwise" and len(raw) == 2:
        labels = verdict.get("detail") or {}
        return [
            {"order": ORDERS[o], "label": str(labels.get(o)), "text": text}
            for o, text in zip(("ab", "ba"), raw, strict=True)
        ]
    return [{"order": "", "label": str(verdict.get("value")), "text": t} for t in raw]


def audit_rows(
    generate_dir: Path, verdicts: list[dict[str, Any]], system: str, baseline: str | None
) -> dict[str, list[dict[str, Any]]]:
    """Per prompt set, one row per judged turn of the first `LIMIT` prompts."""
    index = _verdicts_by_turn(verdicts)
    out: dict[str, list[dict[str, Any]]] = {}
    for prompts_file in sorted((generate_dir / "prompts").glob("*.jsonl")):
        name = prompts_file.stem
        mine = {r["id"]: r for r in _jsonl(generate_dir / "answers" / name / f"{system}.jsonl")}
        theirs = {}
        if baseline:
            theirs = {
                r["id"]: r for r in _jsonl(generate_dir / "answers" / name / f"{baseline}.jsonl")
            }
        rows = []
        for prompt in _jsonl(prompts_file)[:LIMIT]:
            rows += _prompt_rows(name, prompt, mine, theirs, index, system, baseline)
        out[name] = rows
    return out


def _prompt_rows(
    name: str,
    prompt: dict[str, Any],
    mine: dict[str, Any],
    theirs: dict[str, Any],
    index: dict[tuple, dict[str, Any]],
    system: str,
    baseline: str | None,
) -> list[dict[str, Any]]:
    record = mine.get(prompt["id"])
    if record is None:
        return []
    other = theirs.get(prompt["id"])
    rows = []
    for k, turn in enumerate(record["turns"]):
        number = k + 1
        pair = index.get((name, system, baseline, "pairwise", prompt["id"], number))
        ratings = {
            protocol: v["value"]
            for protocol in ("absolute", "likert", "single", "safety")
            if (v := index.get((name, system, None, protocol, prompt["id"], number)))
        }
        rows.append(
            {
                "id": prompt["id"],
                "turn": number,
                "earlier": [t["prompt"] for t in record["turns"][:k]],
                "prompt": turn["prompt"],
                "answer": turn["answer"],
                "finish": turn.get("finish_reason"),
                "other": other["turns"][k]["answer"] if other and k < len(other["turns"]) else None,
                "verdict": None
                if pair is None
                else (pair["value"] if pair["valid"] else "invalid"),
                "reasoning": _reasoning(pair),
                "ratings": ratings,
            }
        )
    return rows
