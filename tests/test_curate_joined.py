"""The pipeline's driver side (`lima.curate.pipeline._Streamed`): dedup run shard by shard
while pass 2 is still running. Its output must be the one of deduplicating after the last shard,
in the final order, whether or not the shards arrive in that order."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from lima.curate import pipeline
from lima.curate.pipeline import filter_and_dedup
from lima.spec.data import DataSpec
from tests.conftest import FIXTURES

SENTENCE = "Water boils at a lower temperature at altitude because the air pressure is lower. "


def _spec(*paths: Path) -> DataSpec:
    sources = [
        {"name": f"se{i}", "kind": "stackexchange", "uri": str(p), "quota": 1}
        for i, p in enumerate(paths)
    ]
    return DataSpec.model_validate({"sources": sources})


def _run(spec: DataSpec, tmp_path: Path, shard_bytes: int, monkeypatch, stream: bool) -> dict:
    seen: dict = {}
    add, finish = pipeline._Streamed.add, pipeline._Streamed.finish

    def no_streaming(self, docs):
        self.in_order = False  # as if the shards had come out of order
        add(self, docs)

    def recording(self, out):
        seen.update(in_order=self.in_order, streamed=len(self.streamed))
        return finish(self, out)

    with monkeypatch.context() as patch:
        if not stream:
            patch.setattr(pipeline._Streamed, "add", no_streaming)
        patch.setattr(pipeline._Streamed, "finish", recording)
        rejected = io.BytesIO()
        out = filter_and_dedup(
            spec, None, tmp_path, rejected, workers=1, cpus=1, shard_bytes=shard_bytes
        )
    return {
        "docs": [
            (d.source, d.file, d.row, d.conversations, d.tags, d.meta, d.hash, list(d.minhash))
            for d in out.docs
        ],
        "rejected": rejected.getvalue(),
        "duplicates": [r.line() for r in out.duplicates],
        "stats": json.dumps(out.stats.to_dict()),  # key order included
        "count": out.rejected,
        **seen,
    }


def _posts(path: Path, rows: list[str]) -> Path:
    head = '<?xml version="1.0" encoding="utf-8"?>\n<posts>\n'
    path.write_text(head + "".join(f"  {r}\n" for r in rows) + "</posts>\n")
    return path


def _answer(aid: int, qid: int, words: str) -> str:
    body = "&lt;p&gt;" + (SENTENCE + words + " ") * 16 + "&lt;/p&gt;"
    return (
        f'<row Id="{aid}" PostTypeId="2" ParentId="{qid}" Score="{20 + aid % 7}" Body="{body}" />'
    )


def _question(qid: int) -> str:
    return f'<row Id="{qid}" PostTypeId="1" Score="5" Title="Why is that, case {qid}?" Body="q" />'


def _near_copies(path: Path, descending: bool) -> Path:
    """Questions each with one answer; the answers come in families of near copies."""
    rows = []
    ids = range(40, 0, -1) if descending else range(1, 41)
    for n in ids:
        rows.append(_question(1000 + n))
        rows.append(_answer(n, 1000 + n, f"variant {n % 3} of family {n % 5}"))
    return _posts(path, rows)


@pytest.mark.parametrize("shard_bytes", [2_000, 10**9])
def test_streamed_dedup_matches_dedup_after_the_last_shard(
    ray_local, tmp_path: Path, monkeypatch, shard_bytes: int
):
    path = _near_copies(tmp_path / "water.stackexchange.com_Posts.xml", descending=False)
    spec = _spec(path)
    streamed = _run(spec, tmp_path, shard_bytes, monkeypatch, stream=True)
    after = _run(spec, tmp_path, shard_bytes, monkeypatch, stream=False)
    assert streamed["in_order"] and streamed["streamed"] == len(streamed["docs"]) + len(
        streamed["duplicates"]
    )
    assert streamed["duplicates"]  # near copies were found
    assert {k: v for k, v in streamed.items() if k not in ("in_order", "streamed")} == {
        k: v for k, v in after.items() if k not in ("in_order", "streamed")
    }


def test_shards_out_of_order_are_deduplicated_again(ray_local, tmp_path: Path, monkeypatch):
    path = _near_copies(tmp_path / "water.stackexchange.com_Posts.xml", descending=True)
    spec = _spec(path)
    streamed = _run(spec, tmp_path, 2_000, monkeypatch, stream=True)
    after = _run(spec, tmp_path, 2_000, monkeypatch, stream=False)
    assert not streamed["in_order"]
    assert streamed["duplicates"]
    assert {k: v for k, v in streamed.items() if k not in ("in_order", "streamed")} == {
        k: v for k, v in after.items() if k not in ("in_order", "streamed")
    }


def test_fixtures_and_two_sources(ray_local, tmp_path: Path, monkeypatch):
    files = sorted((FIXTURES / "curate" / "stackexchange").glob("*_Posts.xml"))
    spec = _spec(*files, _near_copies(tmp_path / "water.stackexchange.com_Posts.xml", False))
    for shard_bytes in (1_500, 10**9):
        streamed = _run(spec, tmp_path, shard_bytes, monkeypatch, stream=True)
        after = _run(spec, tmp_path, shard_bytes, monkeypatch, stream=False)
        assert {k: v for k, v in streamed.items() if k not in ("in_order", "streamed")} == {
            k: v for k, v in after.items() if k not in ("in_order", "streamed")
        }
