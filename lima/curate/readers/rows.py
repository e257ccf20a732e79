"""Byte-range shards of line-oriented files, so one big file is read by several Ray tasks.

Stack Exchange dumps write one `<row .../>` per line; a shard owns the rows that *start* inside
its byte range and reads past its end to finish the last one. Each row is parsed on its own
(lxml), which keeps memory bounded and confines a malformed row to itself. The attributes stay
lxml's lazy mapping, so the big `Body` is decoded to a Python string only for the rows that need
it (measured: parsing ~1 MiB blocks of rows in one lxml call was slower than this).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

from lxml import etree

_PARSER = etree.XMLParser(resolve_entities=False, huge_tree=True)


@dataclass(frozen=True)
class RawRow:
    offset: int
    """Byte offset of the row in its file (the row id of rows that cannot be parsed)."""
    attrs: Mapping[str, str] | None
    error: str | None = None
    excerpt: str = ""


def plan_ranges(path: str, shard_bytes: int) -> list[tuple[int, int]]:
    size = os.path.getsize(path)
    if size == 0:
        return [(0, 0)]
    starts = list(range(0, size, max(shard_bytes, 1)))
    return [(s, min(s + shard_bytes, size)) for s in starts]


def iter_rows(path: str, start: int, end: int, max_chars: int) -> Iterator[RawRow]:
    """Every `<row>` starting in [start, end), in file order; errors become RawRow.error."""
    assembler = _Assembler(max_chars)
    for offset, line, owned in _lines(path, start, end):
        if not owned and not assembler.pending:
            return
        yield from assembler.feed(offset, line, owned)
    yield from assembler.finish()


def _lines(path: str, start: int, end: int) -> Iterator[tuple[int, bytes, bool]]:
    """(offset, line, owned) from the first line starting at or after `start`; lines starting at
    or after `end` are yielded with owned=False so a row begun inside the range can finish."""
    with open(path, "rb") as handle:
        if start > 0:
            handle.seek(start - 1)
            handle.readline()  # move to the first line that starts at or after `start`
        offset = handle.tell()
        for line in handle:
            yield offset, line, offset < end
            offset += len(line)


def rows_at(path: str, offsets: list[int], max_chars: int) -> Iterator[RawRow]:
    """The rows starting at these byte offsets (ascending), each parsed alone."""
    with open(path, "rb") as handle:
        for offset in offsets:
            handle.seek(offset)
            yield _row_at(handle, offset, max_chars)


def _row_at(handle: BinaryIO, offset: int, max_chars: int) -> RawRow:
    assembler = _Assembler(max_chars)
    position = offset
    while line := handle.readline():
        found = list(assembler.feed(position, line, owned=position == offset))
        position += len(line)
        if found:
            return found[0]
        if not assembler.pending:
            break
    return next(iter(assembler.finish()), None) or RawRow(
        offset, None, "malformed_xml: no row starts at this offset"
    )


@dataclass
class _Assembler:
    """Row-by-row parsing: joins multi-line rows, and resynchronises at the next `<row` when a
    row is cut off (a truncated row is reported alone; the valid row after it is kept)."""

    max_chars: int
    pending: list[bytes] = field(default_factory=list)
    pending_at: int = 0
    pending_size: int = 0

    def feed(self, offset: int, line: bytes, owned: bool) -> Iterator[RawRow]:
        lead = len(line) - len(line.lstrip())
        cut = line.find(b"<row", lead + 1 if line.startswith(b"<row", lead) else 0)
        if cut > 0:
            # A `<row` later on this line (`<` cannot occur unescaped inside an attribute):
            # what precedes it ends there (a truncated row, or a whole one), and the next row
            # starts at it rather than at the next line.
            yield from self.feed(offset, line[:cut], owned)
            if self.pending:
                yield self._drop("unterminated_row")
            yield from self.feed(offset + cut, line[cut:], owned)
            return
        stripped = line.strip()
        starts_row = stripped.startswith(b"<row")
        if self.pending and starts_row:
            # `<` cannot occur unescaped inside an attribute, so a new `<row` means the pending
            # row was truncated.
            yield self._drop("unterminated_row")
        if not self.pending:
            if not owned:
                return
            if not starts_row:
                if stripped and not _is_wrapper(stripped):
                    yield RawRow(offset, None, "stray_text", _excerpt(stripped))
                return
            self.pending_at = offset
        self.pending.append(line)
        self.pending_size += len(line)
        if self.pending_size > self.max_chars:
            yield self._drop(f"field_too_large: row over {self.max_chars} bytes", first_only=True)
        elif stripped.endswith(b"/>") or stripped.endswith(b"</row>"):
            raw = b"".join(self.pending)
            self.pending, self.pending_size = [], 0
            yield _parse(self.pending_at, raw)

    def finish(self) -> Iterator[RawRow]:
        if self.pending:
            yield self._drop("unterminated_row")

    def _drop(self, error: str, first_only: bool = False) -> RawRow:
        raw = self.pending[0] if first_only else b"".join(self.pending)
        self.pending, self.pending_size = [], 0
        return RawRow(self.pending_at, None, error, _excerpt(raw))


def _is_wrapper(line: bytes) -> bool:
    line = line.lstrip(b"\xef\xbb\xbf")
    return line.startswith((b"<?xml", b"<posts", b"</posts", b"<!--"))


def _excerpt(raw: bytes) -> str:
    return raw[:200].decode("utf-8", errors="replace")


def _parse(offset: int, raw: bytes) -> RawRow:
    try:
        element = etree.fromstring(raw, _PARSER)
    except etree.XMLSyntaxError as error:
        try:  # libxml2 rejects bad UTF-8 too: name that cause when it is the cause
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            return RawRow(
                offset, None, f"invalid_utf8: {bad.reason} at byte {bad.start}", _excerpt(raw)
            )
        return RawRow(offset, None, f"malformed_xml: {error.msg}", _excerpt(raw))
    return RawRow(offset, element.attrib)
