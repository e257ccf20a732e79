"""Pass 1's fast path over `Posts.xml`: the numbers of each row, without parsing the `Body`.

Pass 1 needs five small attributes of every row (Id, PostTypeId, ParentId, Score; the offset
comes from the position), but parsing each row with libxml2 walks every byte of the big `Body`
and `Title` values. Here a shard is read in blocks of whole lines and each line is matched by one
compiled bytes regex of a Stack Exchange row: the attributes in the dump's order, each name at most
once, every value double-quoted (`[^"]*` skips a value at memchr-like speed), the numeric ones as
plain ASCII integers. A row takes the fast path only when libxml2 would certainly parse it to the
same attributes; every other line (another attribute order or an unknown attribute, single quotes,
an entity in a number, a row over several lines, a truncated or malformed row, wrapper lines) goes
through the lxml path of `rows.py` unchanged, with the same resynchronisation and errors.

"Certainly" is checked per block, in bulk, and per row only where a block fails the bulk check:
- no control character that XML forbids (one `bytes.translate`);
- every `&` starts a predefined entity or a numeric character reference to a character XML
  allows (a conservative list of ranges; anything else goes to lxml, which decides);
- valid UTF-8 without U+FFFE / U+FFFF (`isascii`, else one decode);
- no `<` inside a value: the block's `<` count is the number of fast rows plus the `<`s of the
  lines lxml parsed (checked after the block; a mismatch re-reads the block row by row);
- the row fits `max_chars` (larger rows are rejected by the lxml path as before).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO

from lima.curate.readers.rows import RawRow, _Assembler

FastRow = tuple[int, bytes, bytes, bytes | None, bytes | None]
"""(byte offset, Id, PostTypeId, ParentId or None, Score or None), as ASCII digits."""

SCHEMA = (
    "Id",
    "PostTypeId",
    "AcceptedAnswerId",
    "ParentId",
    "CreationDate",
    "DeletionDate",
    "Score",
    "ViewCount",
    "Body",
    "OwnerUserId",
    "OwnerDisplayName",
    "LastEditorUserId",
    "LastEditorDisplayName",
    "LastEditDate",
    "LastActivityDate",
    "Title",
    "Tags",
    "AnswerCount",
    "CommentCount",
    "FavoriteCount",
    "ClosedDate",
    "CommunityOwnedDate",
    "ContentLicense",
)
"""The attributes of a Stack Exchange `Posts.xml` row, in the order the dumps write them."""

_CAPTURED = {"Id": "[0-9]+", "PostTypeId": "[0-9]+", "ParentId": "-?[0-9]+", "Score": "-?[0-9]+"}
_REQUIRED = {"Id", "PostTypeId"}


def _row_pattern() -> re.Pattern[bytes]:
    parts = ["[ \t]*<row"]
    for name in SCHEMA:
        value = f"({_CAPTURED[name]})" if name in _CAPTURED else '[^"]*'
        attribute = f' {name}="{value}"'
        parts.append(attribute if name in _REQUIRED else f"(?:{attribute})?")
    parts.append("[ \t]*/>[ \t\r]*\n?")
    return re.compile("".join(parts).encode())


_ROW = _row_pattern()
# Bytes below 0x20 other than tab, LF and CR are not XML characters.
_CONTROL = bytes(range(0x20)).translate(None, b"\t\n\r")
_NOT_CONTROL = bytes(b for b in range(256) if b not in _CONTROL)
# Predefined entities and character references to allowed characters (decimal 9, 10, 13,
# 32-54999, 100000-199999; hex 9, A, D, 20-CFFF, 10000-1FFFF): a subset of what XML allows,
# so a reference outside it only sends its row to lxml.
_BAD_REFERENCE = re.compile(
    rb"&(?!(?:lt|gt|amp|quot|apos"
    rb"|#(?:9|10|13|3[2-9]|[4-9][0-9]|[1-9][0-9]{2,3}|[1-4][0-9]{4}|5[0-4][0-9]{3}|1[0-9]{5})"
    rb"|#x(?:9|[aAdD]|[2-9a-fA-F][0-9a-fA-F]|[1-9a-cA-C][0-9a-fA-F]{2,3}|1[0-9a-fA-F]{4})"
    rb");)"
)
_NONCHARACTERS = (b"\xef\xbf\xbe", b"\xef\xbf\xbf")  # U+FFFE, U+FFFF in UTF-8
BLOCK_BYTES = 1 << 20


def _characters_ok(data: bytes) -> bool:
    """True when every character of `data` is one libxml2 accepts in an attribute value (and the
    `&`s are references it resolves); False means "not certain", never "invalid"."""
    if data.translate(None, _NOT_CONTROL) or _BAD_REFERENCE.search(data):
        return False
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not any(bad in data for bad in _NONCHARACTERS)


def scan_rows(
    path: str, start: int, end: int, max_chars: int, block_bytes: int | None = None
) -> Iterator[list[FastRow | RawRow]]:
    """The rows starting in [start, end), as `rows.iter_rows` sees them, in file order and in
    lists (one per block): a `FastRow` tuple where the fast path is certain, else the `RawRow`
    of the lxml path."""
    assembler = _Assembler(max_chars)
    block_bytes = block_bytes or BLOCK_BYTES
    with open(path, "rb") as handle:
        if start > 0:
            handle.seek(start - 1)
            handle.readline()  # the first line that starts at or after `start`
        offset = handle.tell()
        while offset < end:
            block = handle.read(min(block_bytes, end - offset))
            if not block:
                break
            if not block.endswith(b"\n"):
                whole = block.rfind(b"\n") + 1
                if whole and offset + len(block) < end:
                    block = block[:whole]  # whole lines; the next block starts at the cut line
                    handle.seek(offset + whole)
                else:  # the last line starts before `end`: finish it
                    block += handle.readline()
            yield _block(block, offset, assembler)
            offset += len(block)
        yield list(_past_end(handle, offset, assembler))


def _past_end(handle: BinaryIO, offset: int, assembler: _Assembler) -> Iterator[RawRow]:
    """Lines starting at or after the range's end, read only to finish a row begun inside it."""
    for line in handle:
        if not assembler.pending:
            break
        yield from assembler.feed(offset, line, owned=False)
        offset += len(line)
    yield from assembler.finish()


def _block(block: bytes, base: int, assembler: _Assembler) -> list[FastRow | RawRow]:
    saved = list(assembler.pending), assembler.pending_at, assembler.pending_size
    out, parsed_lt = _lines(block, base, assembler, careful=not _characters_ok(block))
    if parsed_lt is not None and block.count(b"<") != parsed_lt:
        # A `<` inside some value: the block again, each fast row checked on its own.
        assembler.pending, assembler.pending_at, assembler.pending_size = saved
        out, _ = _lines(block, base, assembler, careful=True)
    return out


def _lines(
    block: bytes, base: int, assembler: _Assembler, careful: bool
) -> tuple[list[FastRow | RawRow], int | None]:
    """(rows, the `<` count the block must have) of one block of whole lines; with `careful`
    every fast row's characters are checked alone (and no count is returned)."""
    match, find, size, limit = _ROW.fullmatch, block.find, len(block), assembler.max_chars
    out: list[FastRow | RawRow] = []
    append = out.append
    less_than = 0  # `<`s of the fast rows (one each) and of the lines lxml parsed
    pending = bool(assembler.pending)
    pos = 0
    while pos < size:
        stop = find(b"\n", pos) + 1 or size
        if not pending and stop - pos <= limit:
            found = match(block, pos, stop)
            if found is not None and (
                not careful
                or (block.count(b"<", pos, stop) == 1 and _characters_ok(block[pos:stop]))
            ):
                append((base + pos, *found.groups()))
                less_than += 1
                pos = stop
                continue
        line = block[pos:stop]
        out.extend(assembler.feed(base + pos, line, owned=True))
        pending = bool(assembler.pending)
        less_than += line.count(b"<")
        pos = stop
    return out, None if careful else less_than
