"""Byte-range shards of line-oriented files, so one big file is read by several Ray tasks.

Stack Exchange dumps write one `<row .../>` per line; a shard owns the rows that *start* inside
its byte range and reads past its end to finish the last one. Parsing each row on its own (instead
of one iterparse over the file) keeps memory bounded and confines a malformed row to itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from lxml import etree


@dataclass(frozen=True)
class RawRow:
    offset: int
    """Byte offset of the row in its file (the row id of rows that cannot be parsed)."""
    attrs: dict[str, str] | None
    error: str | None = None
    excerpt: str = ""


def plan_ranges(path: str, shard_bytes: int) -> list[tuple[int, int]]:
    size = os.path.getsize(path)
    if size == 0:
        return [(0, 0)]
    starts = list(range(0, size, max(shard_bytes, 1)))
    return [(s, min(s + shard_bytes, size)) for s in starts]


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


def iter_rows(path: str, start: int, end: int, max_chars: int) -> Iterator[RawRow]:
    """Every `<row>` starting in [start, end), parsed alone; errors become RawRow.error."""
    pending: list[bytes] = []
    pending_at = 0
    pending_size = 0
    for offset, line, owned in _lines(path, start, end):
        stripped = line.strip()
        if not pending:
            if not owned:
                return
            if not stripped.startswith(b"<row"):
                if stripped and not _is_wrapper(stripped):
                    yield RawRow(offset, None, "stray_text", _excerpt(stripped))
                continue
            pending_at = offset
        pending.append(line)
        pending_size += len(line)
        if pending_size > max_chars:
            yield RawRow(
                pending_at,
                None,
                f"field_too_large: row over {max_chars} bytes",
                _excerpt(b"".join(pending[:1])),
            )
            pending, pending_size = [], 0
            continue
        if stripped.endswith(b"/>") or stripped.endswith(b"</row>"):
            yield _parse(pending_at, b"".join(pending))
            pending, pending_size = [], 0
    if pending:
        yield RawRow(pending_at, None, "unterminated_row", _excerpt(b"".join(pending)))


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
        element = etree.fromstring(raw)
    except etree.XMLSyntaxError as error:
        return RawRow(offset, None, f"malformed_xml: {error.msg}", _excerpt(raw))
    return RawRow(offset, dict(element.attrib))
