"""Hand-authored JSONL: plain `{"prompt", "response", "tags"?}` or LIMA format
`{"conversations": [user, assistant, ...], "source"?, "tags"?}` (multi-turn allowed).

LIMA 2.2: authored examples are passed through after validation; a `safety` tag marks the
refusals so they can be counted (the paper wrote 13 such examples).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lima.curate.readers.base import Reader
from lima.curate.readers.common import iter_lines
from lima.curate.records import Doc, Rejection, doc


@dataclass
class AuthoredReader(Reader):
    def read(self) -> Iterator[Doc | Rejection]:
        for number, line, error in iter_lines(self.path, self.max_chars):
            self.counted()
            if line is None:
                yield self.bad_row(number, error)
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield self.drop(number, "json_error", f"{exc.msg} at column {exc.colno}", line)
                continue
            turns, problem = conversation(record)
            if problem:
                yield self.drop(number, "wrong_schema", problem, line)
                continue
            yield self._doc(number, record, turns)

    def _doc(self, number: int, record: dict[str, Any], turns: list[str]) -> Doc:
        tags = record.get("tags") if isinstance(record.get("tags"), list) else []
        meta = {"origin": record["source"]} if isinstance(record.get("source"), str) else {}
        # The row is the line number, so the first copy of a duplicate is the first line (an
        # `id` sorts as a string) and provenance names a place even when ids repeat.
        item = doc(self.source, self.path, number, turns, tags=[str(t) for t in tags], meta=meta)
        if isinstance(record.get("id"), str | int) and not isinstance(record.get("id"), bool):
            item.source_id = str(record["id"])
        return item


def conversation(record: Any) -> tuple[list[str], str]:
    """The alternating user/assistant turns of a record, or an explanation of what is wrong."""
    if not isinstance(record, dict):
        return [], "a line must be a JSON object"
    if "conversations" in record:
        turns = record["conversations"]
        if not isinstance(turns, list) or not turns:
            return [], "conversations must be a non-empty list"
        turns = [t.get("value", t.get("content")) if isinstance(t, dict) else t for t in turns]
    elif "prompt" in record and "response" in record:
        turns = [record["prompt"], record["response"]]
    else:
        return [], "needs conversations, or prompt and response"
    if len(turns) % 2:
        return [], f"{len(turns)} turns: a conversation must end with the assistant"
    if not all(isinstance(t, str) and t.strip() for t in turns):
        return [], "every turn must be a non-empty string"
    return [t.strip() for t in turns], ""
