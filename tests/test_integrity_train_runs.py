"""Issue 13: per-run training folders (`train-runs/train-<key16>/<run id>/epoch-NNN`), resume from
the newest intact checkpoint of any run of the key (a damaged or missing epoch falls back to the
previous good one), and `lima gc` of abandoned run folders. Checkpoints here are small stand-ins
written through the real sealing code (`lima.train.checkpoint.seal`); the real DeepSpeed run is
in test_integrity_checkpoints.py."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from store_helpers import file_store, make_tree, moto_endpoint, publish, s3_store, s3cfg

from lima.store import ArtifactStore, FileBackend
from lima.store.gc import collect
from lima.train import checkpoint as ckpt
from lima.train import layout

__all__ = ["moto_endpoint", "s3cfg"]  # fixtures

LOCAL = pafs.LocalFileSystem()


def fake_epoch(run: Path, epoch: int, *, shards: bool = True, hf: bool = False) -> Path:
    """An epoch checkpoint of a one-rank run, sealed the way the training loop seals it."""
    folder = run / layout.tag(epoch)
    folder.mkdir(parents=True)
    if shards:
        shard = folder / layout.DS_DIR / layout.tag(epoch) / "optim_states.pt"
        shard.parent.mkdir(parents=True)
        shard.write_bytes(bytes(range(256)) * (4 + epoch))
    if hf:
        (folder / layout.HF_DIR).mkdir()
        (folder / layout.HF_DIR / "config.json").write_text(f'{{"epoch": {epoch}}}')
    ckpt.write_state(folder, epoch, epoch * 10, 1, [{"kind": "epoch", "epoch": epoch}])
    ckpt.seal(folder, 0)
    return folder


def test_the_layout_names_one_folder_per_run_of_a_key() -> None:
    key = "ab" * 32
    first, second = layout.new_run_id(), layout.new_run_id()
    assert first != second and layout.is_run_id(first)
    assert layout.run_folder(key, first) == f"train-{key[:16]}/{first}"
    assert layout.run_folder(key, first) != layout.run_folder(key, second)
    assert not layout.is_run_id("epoch-001")  # the old shared layout


def test_resume_prefers_the_newest_epoch_and_skips_a_damaged_one(tmp_path, caplog) -> None:
    key = tmp_path / "train-k"
    old, mine = key / "20260101T000000-aaaaaa", key / "20260102T000000-bbbbbb"
    for epoch in (1, 2, 3):
        fake_epoch(old, epoch)
    fake_epoch(mine, 2)
    candidates = ckpt.resume_candidates(LOCAL, str(mine), str(key))
    # Newest epoch first; on a tie this run's own checkpoint comes first.
    assert candidates == [
        (3, str(old / "epoch-003")),
        (2, str(mine / "epoch-002")),
        (2, str(old / "epoch-002")),
        (1, str(old / "epoch-001")),
    ]
    assert ckpt.resume_candidates(LOCAL, str(mine), None) == [(2, str(mine / "epoch-002"))]

    shard = old / "epoch-003" / layout.DS_DIR / "epoch-003" / "optim_states.pt"
    data = bytearray(shard.read_bytes())
    data[7] ^= 0x01
    shard.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="lima.train"):
        assert ckpt.first_good(LOCAL, candidates) == (2, str(mine / "epoch-002"))
    assert f"{shard}: sha256 differs from {layout.digest_file(0)}" in caplog.text


def test_a_missing_or_half_written_later_epoch_never_blocks_a_resume(tmp_path) -> None:
    """The old shared folder: a missing later epoch folder made every resume of the key fail
    (Ray's checkpoint snapshot). Now each run has its own folder and Ray name; a deleted,
    unsealed or shard-less epoch is simply not a candidate."""
    key = tmp_path / "train-k"
    run = key / "20260101T000000-aaaaaa"
    for epoch in (1, 2, 3, 4):
        fake_epoch(run, epoch)
    shutil.rmtree(run / "epoch-004")  # lost
    (run / "epoch-003" / layout.done_marker(0)).unlink()  # never finished
    shutil.rmtree(run / "epoch-002" / layout.DS_DIR)  # pruned by retention
    candidates = ckpt.resume_candidates(LOCAL, str(key / "20260102T000000-bbbbbb"), str(key))
    assert ckpt.first_good(LOCAL, candidates) == (1, str(run / "epoch-001"))
    (run / "epoch-001" / layout.digest_file(0)).unlink()  # no digests: not resumable
    assert ckpt.first_good(LOCAL, candidates) is None


def test_a_resumed_run_collects_the_epochs_it_inherited(tmp_path) -> None:
    key = tmp_path / "train-k"
    old, new = key / "20260101T000000-aaaaaa", key / "20260102T000000-bbbbbb"
    for epoch in (1, 2, 3):
        fake_epoch(old, epoch, hf=True)  # old epoch 3 is the damaged one, never collected
    ckpt.write_resumed_from(LOCAL, str(new), 2, str(old / "epoch-002"))
    fake_epoch(new, 3, hf=True)
    assert ckpt.run_epochs(LOCAL, str(new)) == [
        (1, str(old / "epoch-001")),
        (2, str(old / "epoch-002")),
        (3, str(new / "epoch-003")),
    ]
    # Shards dropped by retention do not make an inherited epoch's model unreadable.
    shutil.rmtree(old / "epoch-001" / layout.DS_DIR)
    assert ckpt.stored_problems(LOCAL, str(old / "epoch-001"), shards=False) == []
    assert ckpt.stored_problems(LOCAL, str(old / "epoch-001"))[0].endswith("missing")


# -- lima gc ------------------------------------------------------------------------------------


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest) -> ArtifactStore:
    if request.param == "file":
        return file_store(request.getfixturevalue("settings"))
    store = s3_store(request.getfixturevalue("s3cfg"))
    store.backend.ensure_bucket()
    return store


def upload_run(store: ArtifactStore, local: Path, key_folder: str) -> str:
    prefix = store.key_of(layout.RUNS_DIR, key_folder, local.name)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        store.backend.put_bytes(f"{prefix}/{path.relative_to(local).as_posix()}", path.read_bytes())
    return prefix


def make_old(store: ArtifactStore, seconds: float = 7 * 3600) -> float:
    """Back-date local files (S3 objects cannot be: min_age 0 instead); returns min_age_s."""
    if not isinstance(store.backend, FileBackend):
        return 0
    for path in (store.backend.root / "lima").rglob("*"):
        os.utime(path, (time.time() - seconds,) * 2)
    return 6 * 3600


def test_gc_removes_abandoned_training_runs_and_keeps_resume_points(store, tmp_path) -> None:
    done_key, open_key = "d" * 64, "e" * 64
    publish(store, "train", done_key, make_tree(tmp_path / "artifact", {"summary.json": b"{}"}))
    fake_epoch(tmp_path / "runs" / "20260101T000000-aaaaaa", 1)
    fake_epoch(tmp_path / "runs" / "20260101T000100-bbbbbb", 1)
    (tmp_path / "runs" / "20260101T000200-cccccc" / "epoch-001" / "ds").mkdir(parents=True)
    (tmp_path / "runs" / "20260101T000200-cccccc" / "epoch-001" / "ds" / "x.pt").write_bytes(b"x")
    published_run = upload_run(
        store, tmp_path / "runs" / "20260101T000000-aaaaaa", layout.key_folder(done_key)
    )
    resume_point = upload_run(
        store, tmp_path / "runs" / "20260101T000100-bbbbbb", layout.key_folder(open_key)
    )
    killed = upload_run(
        store, tmp_path / "runs" / "20260101T000200-cccccc", layout.key_folder(open_key)
    )
    min_age = make_old(store)

    dry = collect(store, min_age_s=min_age)
    assert sorted((folder, why) for folder, _, _, why in dry.runs) == sorted(
        [
            (published_run, "its train artifact is published"),
            (killed, "no complete epoch checkpoint"),
        ]
    )
    assert any(line.startswith(f"would remove training run {killed}") for line in dry.lines())
    assert store.backend.stat(f"{killed}/epoch-001/ds/x.pt") is not None  # a dry run
    collect(store, min_age_s=min_age, apply=True)
    assert list(store.backend.list(published_run + "/")) == []
    assert list(store.backend.list(killed + "/")) == []
    kept = set(store.backend.list(resume_point + "/"))
    assert f"{resume_point}/epoch-001/{layout.STATE}" in kept
    store.verify(store.manifest("train", done_key), deep=True)


def test_gc_leaves_a_run_folder_still_being_written_alone(settings, tmp_path) -> None:
    store = file_store(settings)
    (tmp_path / "run" / "epoch-001").mkdir(parents=True)
    (tmp_path / "run" / "epoch-001" / "partial.pt").write_bytes(b"uploading")
    upload_run(store, tmp_path / "run", layout.key_folder("f" * 64))
    assert collect(store).runs == []
    assert json.loads(json.dumps(collect(store, min_age_s=0).runs))[0][3] == (
        "no complete epoch checkpoint"
    )
