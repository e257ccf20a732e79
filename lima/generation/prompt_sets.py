"""Prompt sets: what the generate and select stages answer.

Accepted layouts (one JSON object per line), detected per row:

- LIMA conversations (the curate stage's splits, authored data): `{"id", "conversations": [user,
  assistant, user, ...], "tags"?, "source"?}`; the user turns are the prompts, the assistant turns
  the references.
- Plain prompts: `{"id", "prompt", "reference"?, "category"?, "tags"?}`.
- MT-Bench / Vicuna `question.jsonl`: `{"question_id", "category", "turns": [...], "reference"?}`
  (MT-Bench's two turns are answered turn by turn).

A row that fits none of them is rejected with its line number and reason, never silently dropped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lima.errors import SourceError

CURATED_PREFIX = "curated:"


@dataclass
class PromptRecord:
    id: str
    turns: list[str]
    """User turns, answered one after the other (later turns see earlier answers)."""
    references: list[str | None] = field(default_factory=list)
    """Reference answer per turn, when the data has one (used by the reference judge)."""
    category: str | None = None
    tags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PromptRecord:
        return cls(**raw)


@dataclass
class Rejected:
    line: int
    reason: str
    text: str


def _strings(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def parse_row(raw: Any, line: int) -> PromptRecord:
    """One prompt from one JSON row; ValueError naming the field when it fits no layout."""
    if not isinstance(raw, dict):
        raise ValueError("row is not a JSON object")
    tags = [str(t) for t in raw.get("tags") or []]
    category = raw.get("category")
    if "conversations" in raw:
        conv = raw["conversations"]
        if not _strings(conv):
            raise ValueError("`conversations` must be a non-empty list of strings")
        rid = raw.get("id", f"line-{line}")
        users, refs = conv[0::2], conv[1::2]
        references = [refs[i] if i < len(refs) else None for i in range(len(users))]
        return PromptRecord(str(rid), users, references, category, tags)
    if "turns" in raw:
        if not _strings(raw["turns"]):
            raise ValueError("`turns` must be a non-empty list of strings")
        rid = raw.get("question_id", raw.get("id"))
        if rid is None:
            raise ValueError("`question_id` (or `id`) is missing")
        ref = raw.get("reference")
        refs = ref if isinstance(ref, list) else []
        references = [refs[i] if i < len(refs) else None for i in range(len(raw["turns"]))]
        return PromptRecord(str(rid), list(raw["turns"]), references, category, tags)
    if "prompt" in raw:
        if not isinstance(raw["prompt"], str) or not raw["prompt"].strip():
            raise ValueError("`prompt` must be a non-empty string")
        if "id" not in raw:
            raise ValueError("`id` is missing")
        ref = raw.get("reference")
        return PromptRecord(str(raw["id"]), [raw["prompt"]], [ref], category, tags)
    raise ValueError("no `conversations`, `turns` or `prompt` field")


def read_prompt_file(
    path: Path, limit: int | None = None
) -> tuple[list[PromptRecord], list[Rejected]]:
    """Prompts of one JSONL file (first `limit` valid rows) and the rows rejected with reasons."""
    records: list[PromptRecord] = []
    rejected: list[Rejected] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            if limit is not None and len(records) >= limit:
                break
            try:
                record = parse_row(json.loads(text), number)
            except (json.JSONDecodeError, ValueError) as error:
                rejected.append(Rejected(number, f"{path.name}:{number}: {error}", text[:500]))
                continue
            if record.id in seen:
                rejected.append(
                    Rejected(
                        number, f"{path.name}:{number}: duplicate id {record.id!r}", text[:500]
                    )
                )
                continue
            seen.add(record.id)
            records.append(record)
    return records, rejected


def resolve_prompt_file(uri: str, curated_dir: Path | None, scratch: Path, settings: Any) -> Path:
    """The local JSONL file a prompt-set URI names (`curated:dev`, a path, or s3://)."""
    if uri.startswith(CURATED_PREFIX):
        split = uri.removeprefix(CURATED_PREFIX)
        if curated_dir is None:
            raise SourceError(f"{uri}: needs the curate stage's artifact")
        path = curated_dir / f"{split}.jsonl"
        if not path.is_file():
            raise SourceError(f"{uri}: the curate artifact has no {split}.jsonl")
        return path
    from lima.store import expand_uri, localize_uri

    files = expand_uri(uri, settings)
    if len(files) != 1:
        raise SourceError(f"{uri}: a prompt set must name one file (matched {len(files)})")
    return localize_uri(files[0], scratch, settings)
