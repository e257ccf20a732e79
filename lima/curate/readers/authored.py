"""Hand-authored JSONL: plain `{"prompt", "response", "tags"?}` or LIMA format
`{"conversations": [user, assistant, ...], "source"?, "tags"?}` (multi-turn allowed).

LIMA 2.2: authored examples are passed through after validation; a `safety` tag marks the
refusals so they can be counted (the paper wrote 13 such examples).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from lima.curate.readers.common import iter_lines, split_error
from lima.curate.records import Item, doc, reject
from lima.curate.stats import Stats


def read(path: str, source: str, max_chars: int, stats: Stats) -> Iterator[Item]:
    for number, line, error in iter_lines(path, max_chars):
        stats.count_read(source)
        if line is None:
            rule, detail = split_error(error)
            stats.count_drop(source, rule)
            yield reject(source, path, number, rule, detail)
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            stats.count_drop(source, "json_error")
            yield reject(
                source, path, number, "json_error", f"{exc.msg} at column {exc.colno}", line
            )
            continue
        turns, problem = conversation(record)
        if problem:
            stats.count_drop(source, "wrong_schema")
            yield reject(source, path, number, "wrong_schema", problem, line)
            continue
        tags = record.get("tags") if isinstance(record.get("tags"), list) else []
        meta = {"origin": record["source"]} if isinstance(record.get("source"), str) else {}
        # The row is the line number, so the first copy of a duplicate is the first line (an
        # `id` sorts as a string) and provenance names a place even when ids repeat.
        item = doc(source, path, number, turns, tags=[str(t) for t in tags], meta=meta)
        if isinstance(record.get("id"), str | int) and not isinstance(record.get("id"), bool):
            item["source_id"] = str(record["id"])
        yield item


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
