"""The two kinds of item that flow through curation steps: a doc and a rejection.

Both are plain dicts so they cross Ray process boundaries cheaply. A doc carries
`prompt`, `response` (or a full `conversations` list), `source`, `file`, `row`, `tags` and `meta`;
a rejection carries the rule or parse error that dropped a row and where the row came from.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

Item = dict[str, Any]
_ENCODER = json.JSONEncoder(ensure_ascii=False)


def doc(
    source: str,
    file: str,
    row: str | int,
    conversations: list[str],
    *,
    tags: list[str] | None = None,
    meta: dict[str, Any] | None = None,
) -> Item:
    return {
        "type": "doc",
        "source": source,
        "file": file,
        "row": str(row),
        "conversations": conversations,
        "tags": list(tags or []),
        "meta": dict(meta or {}),
    }


def reject(
    source: str, file: str, row: str | int, rule: str, detail: str = "", text: str = ""
) -> Item:
    """A dropped or malformed row; `text` keeps a short excerpt so the row can be found again."""
    return {
        "type": "rejected",
        "source": source,
        "file": file,
        "row": str(row),
        "rule": rule,
        "detail": detail[:300],
        "excerpt": text[:200],
    }


def prompt_of(item: Item) -> str:
    return item["conversations"][0]


def rejection_lines(items: Iterable[Item]) -> tuple[str, int]:
    """(rejected.jsonl text, line count) of the rejections among `items`; built where the rows
    are read, so only one string per shard crosses to the driver."""
    encode = _ENCODER.encode  # json.dumps(..., ensure_ascii=False) builds an encoder per call
    lines = [
        encode({k: v for k, v in item.items() if k != "type"}) + "\n"
        for item in items
        if item["type"] == "rejected"
    ]
    return "".join(lines), len(lines)
