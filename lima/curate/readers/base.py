"""The small base every file reader shares (datatrove's `PipelineStep` is the model).

A reader only walks its file and yields documents; the base counts every row read and every row
dropped (per rule) and turns a drop into a rejection item naming file, row and rule. The shard
task (`lima.curate.extract`) serialises the rejections of every reader into `rejected.jsonl`
lines where the rows are read. The Stack Exchange reader's two passes over byte ranges do not
fit one-file-one-call; they count and reject through the same `Counter`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from lima.curate.readers.common import split_error
from lima.curate.records import Doc, Rejection, reject
from lima.curate.stats import Stats


@dataclass
class Counter:
    """Counts reads and drops of one source in one file and builds its rejections."""

    source: str
    path: str
    stats: Stats

    def counted(self, rows: int = 1) -> None:
        self.stats.count_read(self.source, rows)

    def drop(
        self, row: str | int, rule: str, detail: str = "", text: str = "", rows: int = 1
    ) -> Rejection:
        """Count a dropped row under `rule` and return its rejection."""
        self.stats.count_drop(self.source, rule, rows)
        return reject(self.source, self.path, row, rule, detail, text)

    def bad_row(self, row: str | int, error: str) -> Rejection:
        """A row that could not be read (`"rule: detail"` from the line/CSV helpers)."""
        rule, detail = split_error(error)
        return self.drop(row, rule, detail)


@dataclass
class Reader(Counter):
    """One source file -> documents. Subclasses implement `read` (docs and `drop(...)`s) and
    take their source's rules as further fields."""

    max_chars: int

    def read(self) -> Iterator[Doc | Rejection]:
        raise NotImplementedError
