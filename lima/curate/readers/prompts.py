"""Evaluation prompt sets: MT-Bench / Vicuna `question.jsonl` and LIMA-format JSONL.

Used by the generate stage: `read_prompt_set(path)` -> `[{id, turns, category, reference}]`.
MT-Bench rows: `{"question_id", "category", "turns": [...], "reference"?: [...]}`; LIMA rows
(the curate stage's dev/test files): `{"id", "conversations": [user, assistant, ...], ...}`;
plain rows: `{"id"?, "prompt", "response"?}`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lima.errors import SourceError


def read_prompt_set(path: str | Path) -> list[dict[str, Any]]:
    """Every prompt of a prompt-set file; a malformed line is a SourceError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"prompt set not found: {path}")
    prompts: list[dict[str, Any]] = []
    with path.open(encoding="utf-8", errors="strict") as handle:
        try:
            lines = list(enumerate(handle, start=1))
        except UnicodeDecodeError as error:
            raise SourceError(f"{path}: invalid UTF-8 ({error.reason})") from None
    for number, line in lines:
        if not line.strip():
            continue
        try:
            prompts.append(_prompt(json.loads(line), number))
        except (json.JSONDecodeError, ValueError) as error:
            raise SourceError(f"{path}:{number}: {error}") from None
    ids = [p["id"] for p in prompts]
    if len(set(ids)) != len(ids):
        raise SourceError(f"{path}: repeated prompt ids")
    return prompts


def _prompt(row: Any, number: int) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise ValueError("a line must be a JSON object")
    category = row.get("category") if isinstance(row.get("category"), str) else None
    if "turns" in row:
        turns, reference = row["turns"], row.get("reference")
        reference = reference if isinstance(reference, list) else None
    elif "conversations" in row:
        conversation = row["conversations"]
        if not isinstance(conversation, list):
            raise ValueError("conversations must be a list")
        turns = conversation[0::2]
        reference = conversation[1::2] or None
        category = category or row.get("source")
    elif "prompt" in row:
        turns = [row["prompt"]]
        reference = [row["response"]] if isinstance(row.get("response"), str) else None
    else:
        raise ValueError("needs turns, conversations or prompt")
    if not turns or not all(isinstance(t, str) and t.strip() for t in turns):
        raise ValueError("every turn must be a non-empty string")
    identifier = row.get("question_id", row.get("id", number))
    return {"id": str(identifier), "turns": turns, "category": category, "reference": reference}
