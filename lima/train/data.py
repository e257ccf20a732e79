"""Curated rows -> (input_ids, labels) examples with LIMA's chat format and loss mask."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lima.errors import StageError
from lima.models.chat import IGNORE_INDEX, format_conversation


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class EncodeStats:
    rows: int = 0
    truncated: int = 0
    """Examples longer than the context length, trimmed to it."""
    dropped: list[dict[str, Any]] = field(default_factory=list)
    """Rows left out, each with its id and reason (e.g. no assistant token left after trimming)."""


def read_conversations(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of a curate jsonl file: (valid rows, rejected rows with `line` and `reason`)."""
    rows, rejected = [], []
    if not Path(path).is_file():
        raise StageError(f"training data not found: {path}")
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        reason = None
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            row, reason = None, f"invalid JSON: {error.msg}"
        if row is not None:
            reason = _row_problem(row)
        if reason:
            rejected.append({"file": Path(path).name, "line": number, "reason": reason})
        else:
            rows.append(row)
    return rows, rejected


def _row_problem(row: Any) -> str | None:
    if not isinstance(row, dict):
        return "row is not a JSON object"
    turns = row.get("conversations")
    if not isinstance(turns, list) or len(turns) < 2:
        return "field conversations: needs at least a user and an assistant turn"
    if not all(isinstance(t, str) and t.strip() for t in turns):
        return "field conversations: every turn must be a non-empty string"
    return None


def subset(rows: list[dict[str, Any]], max_examples: int | None, seed: int) -> list[dict[str, Any]]:
    """At most `max_examples` of `rows`, drawn at random from all of them with `seed`.

    The rows' positions are shuffled once with the seed and a prefix of that order is kept (in
    the rows' own order), so for one seed and pool a smaller subset lies inside a larger one:
    LIMA's quantity ablation trains on nested, exponentially growing samples of one pool.
    """
    if max_examples is None or max_examples >= len(rows):
        return list(rows)
    order = list(range(len(rows)))
    random.Random(f"subset:{seed}").shuffle(order)
    return [rows[i] for i in sorted(order[:max_examples])]


def truncation_warning(truncated: int, rows: int, context_length: int) -> str | None:
    """What to tell the user when conversations were cut to fit `context_length`, or None.

    A cut conversation loses its final EOT, so every such example teaches the model to keep
    going at the end of the context: with many of them, the fine-tuned model never stops.
    """
    if not truncated:
        return None
    return (
        f"{truncated} of {rows} training conversations are longer than context_length "
        f"{context_length} tokens and were cut, losing their EOT: they teach the model not to "
        "stop. Raise train.context_length or keep shorter data (data.filters)."
    )


def training_texts(rows: list[dict[str, Any]]) -> list[str]:
    """Every utterance, for training the tiny preset's tokenizer."""
    return [turn for row in rows for turn in row["conversations"]]


def encode_rows(
    rows: list[dict[str, Any]], tokenizer: Any, model_spec: Any, context_length: int
) -> tuple[list[Example], EncodeStats]:
    """Encode, trim to `context_length` (counted) and drop rows whose mask would be empty."""
    stats = EncodeStats(rows=len(rows))
    examples = []
    for row in rows:
        turns = row["conversations"]
        if len(turns) % 2:  # a trailing user turn has no answer to learn from
            turns = turns[:-1]
        ids, labels = format_conversation(turns, tokenizer, model_spec)
        if len(ids) > context_length:
            stats.truncated += 1
            ids, labels = ids[:context_length], labels[:context_length]
        if all(label == IGNORE_INDEX for label in labels[1:]):
            stats.dropped.append(
                {"id": row.get("id"), "reason": "no assistant token within context"}
            )
            continue
        examples.append(Example(ids, labels))
    return examples, stats
