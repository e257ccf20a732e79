"""The kinds of item that flow through curation, one small slotted dataclass per kind.

- `Doc`: a candidate training example (`conversations`: user, assistant, ... turns) with its
  provenance (`source`, `file`, `row`, the file's own id `source_id`), `tags` and `meta`; the
  later steps fill `minhash`, `hash`, `id`, `tokens` and `nearest` as they go.
- `Rejection`: a dropped or malformed row, naming the rule and where the row came from; its
  `line()` is its rejected.jsonl line.
- `StackQuestion` / `StackAnswer`: the halves of a Stack Exchange example, read in pass 2 and
  joined into a `Doc` in the same task (`lima.curate.readers.stackexchange.join`).

Steps tell them apart with `isinstance`. Docs and rejections cross Ray process boundaries
pickled as the tuple of their fields (`_tuple_pickle`). Measured on 5,000 docs (2-core VM, ms to
pickle / unpickle): the plain dicts these types replaced 3 / 4, a slotted dataclass's default
state (a dict per object) 23 / 16 and 1.5x the bytes, as a tuple 7.5 / 4 and 8% fewer bytes than
the dicts; pickling happens in the parallel shard tasks, unpickling on the driver.
"""

from __future__ import annotations

import copyreg
import json
from collections.abc import Iterable
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, TypeVar

_ENCODER = json.JSONEncoder(ensure_ascii=False)
_STR = json.encoder.encode_basestring  # what _ENCODER uses for every string (C when available)
_T = TypeVar("_T", bound=type)


def _tuple_pickle(cls: _T) -> _T:
    """Pickle instances of the dataclass `cls` as the tuple of its field values."""
    names = tuple(f.name for f in fields(cls))
    values = attrgetter(*names)

    def reduce(self: Any) -> tuple[Any, ...]:
        return copyreg.__newobj__, (cls,), values(self)  # NEWOBJ, then __setstate__

    # One tuple assignment to every field (as `dataclasses` builds `__init__`): a loop of
    # setattr calls was measured 1.5x slower to unpickle.
    scope: dict[str, Any] = {}
    targets = ", ".join(f"self.{name}" for name in names)
    exec(f"def __setstate__(self, state):\n    {targets}, = state", scope)

    cls.__reduce__, cls.__setstate__ = reduce, scope["__setstate__"]
    return cls


@_tuple_pickle
@dataclass(slots=True, eq=False)
class Doc:
    """A candidate training example and what the later steps learn about it."""

    source: str
    file: str
    row: str
    conversations: list[str]
    tags: list[str]
    meta: dict[str, Any]
    source_id: str | None = None
    """The id the source file gave the row (authored data), kept in provenance."""
    minhash: Any = None
    """Near-dedup signature (uint32 values), computed where the row is read."""
    hash: str | None = None
    """Exact-dedup hash of the normalised text."""
    id: str | None = None
    """The example's id in train/dev/test.jsonl, assigned by `lima.curate.assemble`."""
    tokens: int = 0
    nearest: list[Any] | None = None
    """Decontamination's closest held-out matches (one per set and metric), for the report."""
    sketch: Any = None
    """Near-dedup's bound data (shingles per hash bucket, distinct shingle hashes), computed
    with `minhash` and dropped once dedup has used it (`lima.curate.dedup`)."""

    @property
    def prompt(self) -> str:
        return self.conversations[0]


@_tuple_pickle
@dataclass(slots=True, eq=False)
class Rejection:
    """A dropped or malformed row; `excerpt` lets the row be found again, `extra` adds
    rule-specific fields (e.g. `collided_with`, `similarity`) after the common ones."""

    source: str
    file: str
    row: str
    rule: str
    detail: str = ""
    excerpt: str = ""
    extra: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {
            "source": self.source,
            "file": self.file,
            "row": self.row,
            "rule": self.rule,
            "detail": self.detail,
            "excerpt": self.excerpt,
        }
        if self.extra:
            out.update(self.extra)
        return out

    def line(self) -> str:
        """Its rejected.jsonl line (with the newline)."""
        if not self.extra:
            # The common case (no extra fields, every field a string) formatted directly with the
            # encoder's own string escaper: the same text as encoding `to_json()`, 3x faster.
            try:
                return (
                    f'{{"source": {_STR(self.source)}, "file": {_STR(self.file)}, '
                    f'"row": {_STR(self.row)}, "rule": {_STR(self.rule)}, '
                    f'"detail": {_STR(self.detail)}, "excerpt": {_STR(self.excerpt)}}}\n'
                )
            except TypeError:  # a field that is not a string: the general encoder decides
                pass
        return _ENCODER.encode(self.to_json()) + "\n"


@dataclass(slots=True, eq=False)
class StackQuestion:
    """A Stack Exchange question that a kept answer needs (pass 2, inside its task)."""

    qid: int
    title: str
    use_body: bool
    body_html: str
    """Converted at the join, only if its answer passed every rule (most never do)."""
    tags: list[str]
    self_contained: bool


@dataclass(slots=True, eq=False)
class StackAnswer:
    """A Stack Exchange top answer that passed LIMA's answer rules (pass 2, inside its task:
    joined to its question there, it leaves as a `Doc`)."""

    aid: int
    qid: int
    score: int
    markdown: str
    file: str


def doc(
    source: str,
    file: str,
    row: str | int,
    conversations: list[str],
    *,
    tags: list[str] | None = None,
    meta: dict[str, Any] | None = None,
) -> Doc:
    return Doc(source, file, str(row), conversations, list(tags or []), dict(meta or {}))


def reject(
    source: str,
    file: str,
    row: str | int,
    rule: str,
    detail: str = "",
    text: str = "",
    **extra: Any,
) -> Rejection:
    """A dropped or malformed row; `text` keeps a short excerpt so the row can be found again;
    `extra` fields follow the common ones in its rejected.jsonl line."""
    return Rejection(source, file, str(row), rule, detail[:300], text[:200], extra or None)


def rejection_lines(items: Iterable[object]) -> tuple[bytes, int]:
    """(rejected.jsonl lines as UTF-8, line count) of the rejections among `items`; built where
    the rows are read, so one bytes object per shard crosses to the driver, which writes it as
    it is (as text it cost the driver a decode and an encode: ~0.15 s per 21 MB, measured)."""
    lines = [item.line() for item in items if isinstance(item, Rejection)]
    return "".join(lines).encode(), len(lines)
