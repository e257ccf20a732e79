"""Pass 1's fast path (`lima.curate.readers.fastscan`) against the lxml path it replaces.

The reference is what `scan` did before the fast path: every row through `rows.iter_rows` (lxml)
and `stackexchange._scan_raw`. Both must give the same best answers, question offsets,
candidates, rejection lines (in order) and statistics (keys in the same order), on the shared
sample, the fixtures and adversarial rows, for any shard boundaries and block size.
"""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import pytest
from lxml import etree

from lima.curate.readers import fastscan
from lima.curate.readers.base import Counter
from lima.curate.readers.rows import iter_rows, plan_ranges
from lima.curate.readers.stackexchange import Scan, _scan_raw, scan
from lima.curate.records import _ENCODER, Rejection
from lima.curate.stats import Stats
from tests.conftest import FIXTURES

FIXTURE_FILES = sorted((FIXTURES / "curate" / "stackexchange").glob("*_Posts.xml"))
LONG = "&lt;p&gt;" + "Water boils at a lower temperature at altitude. " * 30 + "&lt;/p&gt;"


def reference_scan(path: str, start: int, end: int, min_score: int, max_chars: int) -> tuple:
    stats = Stats()
    out, counter = Scan(), Counter("s", path, stats)
    for raw in iter_rows(path, start, end, max_chars):
        _scan_raw(out, counter, raw, min_score)
    return _summary(out, stats)


def fast_scan(path: str, start: int, end: int, min_score: int, max_chars: int) -> tuple:
    stats = Stats()
    out = scan(path, start, end, source="s", min_score=min_score, max_chars=max_chars, stats=stats)
    return _summary(out, stats)


def _summary(out: Scan, stats: Stats) -> tuple:
    return (
        out.best,
        list(out.question_ids),
        list(out.question_offsets),
        out.candidates,
        [r.line() for r in out.rejected],
        json.dumps(stats.to_dict()),  # key order included
    )


def assert_same_scan(path: Path, ranges, min_score: int = 10, max_chars: int = 50_000) -> None:
    for start, end in ranges:
        assert fast_scan(str(path), start, end, min_score, max_chars) == reference_scan(
            str(path), start, end, min_score, max_chars
        ), (start, end)


def rows_seen(items) -> list[tuple]:
    """(offset, Id, PostTypeId, ParentId, Score) or (offset, error, excerpt) of each row."""
    out = []
    for item in items:
        if isinstance(item, tuple):
            out.append((item[0], *(v.decode() if v is not None else None for v in item[1:])))
        elif item.attrs is None:
            out.append((item.offset, item.error, item.excerpt))
        else:
            a = item.attrs
            out.append(
                (item.offset, a.get("Id"), a.get("PostTypeId"), a.get("ParentId"), a.get("Score"))
            )
    return out


def line_starts(path: Path) -> list[int]:
    starts, at = [], 0
    for line in path.read_bytes().splitlines(keepends=True):
        starts.append(at)
        at += len(line)
    return starts


def posts(tmp_path: Path, *rows: str | bytes, newline: bytes = b"\n", name: str = "x") -> Path:
    path = tmp_path / f"{name}.stackexchange.com_Posts.xml"
    body = [b'<?xml version="1.0" encoding="utf-8"?>', b"<posts>"]
    body += [b"  " + (r if isinstance(r, bytes) else r.encode()) for r in rows]
    body.append(b"</posts>")
    path.write_bytes(newline.join(body) + newline)
    return path


# Rows the fast path must treat exactly as lxml does: most of them it must hand to lxml.
ADVERSARIAL: list[str | bytes] = [
    '<row Id="1" PostTypeId="1" Score="5" Title="Why does water boil faster?" Body="q" />',
    f'<row Id="2" PostTypeId="2" ParentId="1" Score="40" Body="{LONG}" />',
    # attributes in another order, unknown attributes, tabs, no space before />
    f'<row PostTypeId="2" Score="33" Id="3" ParentId="1" Body="{LONG}" />',
    '<row Id="4" PostTypeId="2" ParentId="1" Score="12" Body="x" Extra="y"/>',
    '<row\tId="5"\tPostTypeId="2" ParentId="1" Score="11" Body="x" />',
    # entities: in numbers (lxml resolves them), undefined, invalid or valid character references
    '<row Id="&#54;" PostTypeId="2" ParentId="1" Score="50" Body="x" />',
    '<row Id="7" PostTypeId="&#50;" ParentId="1" Score="51" Body="x" />',
    '<row Id="8" PostTypeId="2" ParentId="1" Score="1&#48;0" Body="x" />',
    '<row Id="9" PostTypeId="2" ParentId="1" Score="60" Body="a &nbsp; b" />',
    '<row Id="10" PostTypeId="2" ParentId="1" Score="61" Body="a &#0; b" />',
    '<row Id="11" PostTypeId="2" ParentId="1" Score="62" Body="a &#65534; b" />',
    '<row Id="12" PostTypeId="2" ParentId="1" Score="63" Body="a &#x1F600; &#128512; b" />',
    '<row Id="13" PostTypeId="2" ParentId="1" Score="64" Body="a &#xD800; b" />',
    '<row Id="14" PostTypeId="2" ParentId="1" Score="65" Body="a &#1114112; &amp b" />',
    '<row Id="15" PostTypeId="2" ParentId="1" Score="66" Body="&lt;&gt;&amp;&quot;&apos;&#xA;" />',
    # characters XML forbids, bad UTF-8, U+FFFE, a raw `<`
    b'<row Id="16" PostTypeId="2" ParentId="1" Score="70" Body="a \x01 b" />',
    b'<row Id="17" PostTypeId="2" ParentId="1" Score="71" Body="a \x0b b" />',
    b'<row Id="18" PostTypeId="2" ParentId="1" Score="72" Body="caf\xe9 \xff" />',
    '<row Id="19" PostTypeId="2" ParentId="1" Score="73" Body="a \ufffe b" />'.encode(),
    '<row Id="20" PostTypeId="2" ParentId="1" Score="74" Body="caf\u00e9 \U0001f600" />'.encode(),
    '<row Id="21" PostTypeId="2" ParentId="1" Score="75" Body="a < b" />',
    # duplicate attributes, single quotes, missing or odd Ids and numbers
    '<row Id="22" PostTypeId="2" ParentId="1" Score="76" Score="2" Body="x" />',
    "<row Id='23' PostTypeId='2' ParentId='1' Score='77' Body='x' />",
    f'<row PostTypeId="2" ParentId="1" Score="99" Body="{LONG}" />',
    f'<row Id="x7" PostTypeId="2" ParentId="1" Score="98" Body="{LONG}" />',
    '<row Id="" PostTypeId="2" ParentId="1" Score="97" Body="x" />',
    '<row Id="0024" PostTypeId="2" ParentId="-3" Score="-4" Body="x" />',
    '<row Id="25" PostTypeId="2" ParentId="1" Score="+5" Body="x" />',
    '<row Id="26" PostTypeId="2" ParentId="1" Score=" 15" Body="x" />',
    '<row Id="\u0663\u0662" PostTypeId="2" ParentId="1" Score="20" Body="x" />',
    '<row Id="27" PostTypeId="2" ParentId="1" Body="no score" />',
    '<row Id="28" PostTypeId="2" Score="30" Body="no parent" />',
    '<row Id="29" Score="30" Body="no type" />',
    '<row Id="30" PostTypeId="1" Title="a" Body="b"></row>',
    '<row Id="31" PostTypeId="3" Score="1" />',
    "<row/>",
    '<rowx Id="32" PostTypeId="2" ParentId="1" Score="40" />',
    # truncated rows (resynchronised at the next `<row`), a row over two lines, stray text
    '<row Id="33" PostTypeId="2" ParentId="1" Score="40" Body="&lt;p&gt;cut off here',
    '<row Id="34" PostTypeId="2" ParentId="1" Score="41" Body="two',
    'lines" />',
    "stray text",
    '<row Id="35" PostTypeId="2" ParentId="1" Score="42" Body="x" /> trailing',
    # two rows on one line, and a cut-off row with the next row on its line
    '<row Id="38" PostTypeId="2" ParentId="1" Score="45" /><row Id="39" PostTypeId="1" />',
    '<row Id="40" PostTypeId="2" ParentId="1" Score="46" Body="cut<row Id="41" PostTypeId="1" />',
    '<row Id="36" PostTypeId="2" ParentId="1" Score="43" Body="last row" />',
    '<row Id="37" PostTypeId="2" ParentId="1" Score="44" Body="not closed"',
]


@pytest.fixture
def adversarial(tmp_path: Path) -> Path:
    return posts(tmp_path, *ADVERSARIAL)


def test_adversarial_rows_read_as_lxml_reads_them(adversarial: Path):
    size = adversarial.stat().st_size
    assert_same_scan(adversarial, [(0, size)])
    fast = [i for b in fastscan.scan_rows(str(adversarial), 0, size, 50_000) for i in b]
    assert rows_seen(fast) == rows_seen(iter_rows(str(adversarial), 0, size, 50_000))
    # Only the plain rows took the fast path; everything doubtful went to lxml (row 1 has its
    # Title before its Body; a line after a row still open goes to lxml too).
    fast_ids = {int(i[1]) for i in fast if isinstance(i, tuple)}
    assert fast_ids == {2, 12, 15, 20, 24, 27, 28, 31, 36}


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_every_shard_boundary(tmp_path: Path, newline: bytes):
    path = posts(tmp_path, *ADVERSARIAL, newline=newline)
    size = path.stat().st_size
    starts = line_starts(path)
    # A shard per line, shards starting exactly at, just after and just before line starts.
    cuts = sorted({0, size, *starts, *(s + 1 for s in starts), *(s - 1 for s in starts[1:])})
    assert_same_scan(path, list(pairwise(cuts)))
    for shard_bytes in (1, 7, 64, 100, 333, 1000, 4096):
        assert_same_scan(path, plan_ranges(str(path), shard_bytes))


@pytest.mark.parametrize("block_bytes", [1, 50, 200, 1000, 1 << 20])
def test_any_block_size(adversarial: Path, block_bytes: int):
    size = adversarial.stat().st_size
    for start, end in [(0, size), *plan_ranges(str(adversarial), 700)]:
        fast = fastscan.scan_rows(str(adversarial), start, end, 50_000, block_bytes=block_bytes)
        parts = rows_seen(i for b in fast for i in b)
        assert parts == rows_seen(iter_rows(str(adversarial), start, end, 50_000))


def test_rows_over_the_size_limit_are_rejected_as_before(adversarial: Path):
    size = adversarial.stat().st_size
    for limit in (60, 90, 120, 500):
        assert_same_scan(adversarial, [(0, size)], max_chars=limit)


@pytest.mark.parametrize("score_floor", [-10, 0, 10, 100])
def test_score_floor(adversarial: Path, score_floor: int):
    assert_same_scan(adversarial, [(0, adversarial.stat().st_size)], min_score=score_floor)


def test_one_bad_row_leaves_its_block_on_the_fast_path(tmp_path: Path):
    good = [
        f'<row Id="{i}" PostTypeId="2" ParentId="1" Score="{i % 30}" Body="b {i}" />'
        for i in range(2, 200)
    ]
    path = posts(tmp_path, *good[:100], '<row Id="500" PostTypeId="2" Body="a < b" />', *good[100:])
    size = path.stat().st_size
    assert_same_scan(path, [(0, size)])
    items = [i for b in fastscan.scan_rows(str(path), 0, size, 50_000) for i in b]
    assert sum(isinstance(i, tuple) for i in items) == len(good)
    assert [i.error.split(":")[0] for i in items if not isinstance(i, tuple)] == ["malformed_xml"]


def test_every_byte_value_in_a_body(tmp_path: Path):
    rows = [
        b'<row Id="%d" PostTypeId="2" ParentId="1" Score="20" Body="a%sb" />' % (i, bytes([i]))
        for i in range(256)
        if i != 10  # a newline splits the row: covered by the two-line row above
    ]
    path = posts(tmp_path, *rows)
    assert_same_scan(path, [(0, path.stat().st_size)])


def _xml_char(n: int) -> bool:
    return n in (0x9, 0xA, 0xD) or 0x20 <= n <= 0xD7FF or 0xE000 <= n <= 0xFFFD or n >= 0x10000


def test_character_references_taken_fast_are_allowed():
    for n in range(0x20000):
        for ref in (b"&#%d;" % n, b"&#x%x;" % n, b"&#x%X;" % n):
            if not fastscan._BAD_REFERENCE.search(ref):
                assert _xml_char(n), ref
    # libxml2 agrees with the XML Char production at its edges
    parser = etree.XMLParser(resolve_entities=False, huge_tree=True)
    for n in (0x8, 0x9, 0xA, 0xD, 0x1F, 0x20, 0xD7FF, 0xD800, 0xE000, 0xFFFD, 0xFFFE, 0x10000):
        try:
            etree.fromstring(b'<r a="&#%d;"/>' % n, parser)
            parsed = True
        except etree.XMLSyntaxError:
            parsed = False
        assert parsed == _xml_char(n), hex(n)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_fixtures(path: Path):
    for shard_bytes in (97, 997, 4096, 10**9):
        assert_same_scan(path, plan_ranges(str(path), shard_bytes))


def test_shared_sample(shared_data: Path):
    path = shared_data / "stackexchange" / "beer.stackexchange.com_Posts.xml"
    for shard_bytes in (65_536, 10**9):
        assert_same_scan(path, plan_ranges(str(path), shard_bytes))
    size = path.stat().st_size
    items = [i for b in fastscan.scan_rows(str(path), 0, size, 200_000) for i in b]
    rows = [i for i in items if isinstance(i, tuple)]
    assert len(rows) == path.read_bytes().count(b"<row ")  # every row took the fast path


def test_rejection_lines_match_the_json_encoder():
    items = [
        Rejection("se", "s3://b/x.xml", "12", "score_below_min", "score 3"),
        Rejection("s", 'f "q"\\', "byte 9", "malformed_xml", "a\x00b\udc80\n\t", "é😀\u2028"),
        Rejection("s", "f", "r", "near_duplicate", "d", "e", {"similarity": {"value": 0.8}}),
        Rejection("s", "f", 3, "odd"),  # type: ignore[arg-type]
    ]
    for item in items:
        assert item.line() == _ENCODER.encode(item.to_json()) + "\n"


def test_small_blocks_through_scan(adversarial: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(fastscan, "BLOCK_BYTES", 64)
    assert_same_scan(adversarial, [(0, adversarial.stat().st_size)])
    assert_same_scan(adversarial, plan_ranges(str(adversarial), 500))
