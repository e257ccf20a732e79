"""Byte-range shards of line-oriented files, so one big file is read by several Ray tasks.

Stack Exchange dumps write one `<row .../>` per line; a shard owns the rows that *start* inside
its byte range and reads past its end to finish the last one.

Speed: lines are read in blocks of about 1 MiB. A block made only of complete one-line rows (the
dumps' normal case) is parsed by lxml in one call, and the rows' attributes stay lazy, so the big
`Body` is decoded only for the few rows that need it. A block with anything else (a multi-line,
truncated, oversized, non-UTF-8 or malformed row, stray text) falls back to parsing row by row,
which confines a bad row to itself and names it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

from lxml import etree

BLOCK_BYTES = 1 << 20
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
    for block, owned_all in _blocks(path, start, end):
        rows = _parse_block(block, max_chars) if owned_all and not assembler.pending else None
        if rows is not None:
            yield from rows
            continue
        for offset, line in block:
            owned = offset < end
            if not owned and not assembler.pending:
                return
            yield from assembler.feed(offset, line, owned)
            if not owned and not assembler.pending:
                return
    yield from assembler.finish()


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


def _blocks(path: str, start: int, end: int) -> Iterator[tuple[list[tuple[int, bytes]], bool]]:
    """Blocks of (offset, line) from the first line starting at or after `start`; each block
    says whether all its lines start before `end`. Reading stops one block after `end`."""
    with open(path, "rb") as handle:
        if start > 0:
            handle.seek(start - 1)
            handle.readline()  # move to the first line that starts at or after `start`
        offset = handle.tell()
        while True:
            lines = handle.readlines(BLOCK_BYTES)
            if not lines:
                return
            block = []
            for line in lines:
                block.append((offset, line))
                offset += len(line)
            owned_all = block[-1][0] < end
            yield block, owned_all
            if not owned_all:
                return


def _parse_block(block: list[tuple[int, bytes]], max_chars: int) -> list[RawRow] | None:
    """All rows of a block of complete one-line rows in one lxml call, or None to fall back."""
    rows: list[tuple[int, bytes]] = []
    for offset, line in block:
        stripped = line.strip()
        if stripped.startswith(b"<row") and stripped.endswith(b"/>") and len(line) <= max_chars:
            rows.append((offset, stripped))
        elif stripped and not _is_wrapper(stripped):
            return None
    if not rows:
        return []
    try:
        root = etree.fromstring(b"<rows>" + b"\n".join(r for _, r in rows) + b"</rows>", _PARSER)
    except etree.XMLSyntaxError:
        return None
    elements = list(root)
    if len(elements) != len(rows) or (root.text or "").strip():
        return None  # two rows on one line, or text between rows: let the row parser name it
    if any((e.tail or "").strip() for e in elements):
        return None
    return [RawRow(offset, e.attrib) for (offset, _), e in zip(rows, elements, strict=True)]


@dataclass
class _Assembler:
    """Row-by-row parsing: joins multi-line rows, and resynchronises at the next `<row` when a
    row is cut off (a truncated row is reported alone; the valid row after it is kept)."""

    max_chars: int
    pending: list[bytes] = field(default_factory=list)
    pending_at: int = 0
    pending_size: int = 0

    def feed(self, offset: int, line: bytes, owned: bool) -> Iterator[RawRow]:
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
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return RawRow(
            offset, None, f"invalid_utf8: {error.reason} at byte {error.start}", _excerpt(raw)
        )
    try:
        element = etree.fromstring(raw, _PARSER)
    except etree.XMLSyntaxError as error:
        return RawRow(offset, None, f"malformed_xml: {error.msg}", _excerpt(raw))
    return RawRow(offset, dict(element.attrib))
