"""Issue 13: checkpoint folders (written by Ray Train, not by the store) carry sha256 digests;
a flipped byte, a lost shard or a cut-short upload is found before anyone resumes from it."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from store_helpers import moto_endpoint, s3cfg

from lima.spec import StorageSpec
from lima.store import pyarrow_filesystem, s3_backend
from lima.store.digests import DIGEST_FILE, checkpoint_problems, write_digests

__all__ = ["moto_endpoint", "s3cfg"]  # fixtures

SHARDS = {
    "zero_pp_rank_0_mp_rank_00_optim_states.pt": bytes(range(256)) * 64,
    "mp_rank_00_model_states.pt": b"\x01" * 5000,
    "latest": b"global_step12",
}


def checkpoint(folder: Path) -> Path:
    for name, data in SHARDS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    write_digests(folder)
    return folder


@pytest.fixture(params=["local", "s3"])
def stored(request: pytest.FixtureRequest, tmp_path: Path):
    """(filesystem, checkpoint path) of a checkpoint uploaded the way Ray Train does."""
    local = checkpoint(tmp_path / "ckpt")
    if request.param == "local":
        settings = request.getfixturevalue("settings")
    else:
        settings = request.getfixturevalue("s3cfg")
        settings = settings.model_copy(update={"bucket": f"k-{uuid.uuid4().hex[:10]}"})
        s3_backend(settings, settings.bucket).ensure_bucket()
    filesystem, base = pyarrow_filesystem(settings, StorageSpec())
    target = f"{base}/train-runs/train-k1/checkpoint_000004"
    filesystem.create_dir(target, recursive=True)
    pafs.copy_files(str(local), target, destination_filesystem=filesystem)
    return filesystem, target


def test_an_intact_checkpoint_has_no_problems(stored) -> None:
    filesystem, path = stored
    assert checkpoint_problems(filesystem, path) == []


def test_a_flipped_byte_in_a_shard_is_found(stored) -> None:
    filesystem, path = stored
    name = "zero_pp_rank_0_mp_rank_00_optim_states.pt"
    data = bytearray(SHARDS[name])
    data[100] ^= 0x01
    with filesystem.open_output_stream(f"{path}/{name}") as out:
        out.write(bytes(data))
    assert checkpoint_problems(filesystem, path, deep=False) == []  # same size
    assert checkpoint_problems(filesystem, path) == [
        f"{path}/{name}: sha256 differs from {DIGEST_FILE}"
    ]


def test_a_lost_shard_and_a_missing_digest_file_are_found(stored) -> None:
    filesystem, path = stored
    filesystem.delete_file(f"{path}/latest")
    assert checkpoint_problems(filesystem, path) == [f"{path}/latest: missing"]
    filesystem.delete_file(f"{path}/{DIGEST_FILE}")
    assert checkpoint_problems(filesystem, path) == [
        f"{path}: no {DIGEST_FILE} (incomplete or not written by lima)"
    ]


# -- digests on the real training path ----------------------------------------------------------


@pytest.fixture
def one_rank_group():
    import socket

    import torch.distributed as dist

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    def forget_deepspeed_groups() -> None:
        """DeepSpeed caches the groups of an earlier test in this process (e.g. that of
        tests/test_train_loop.py): forget them so that it joins this test's group."""
        import deepspeed.comm.comm as ds_comm
        import deepspeed.utils.groups as ds_groups

        ds_comm.cdb = None
        ds_groups._WORLD_GROUP = None
        ds_groups._DATA_PARALLEL_GROUP = None

    forget_deepspeed_groups()
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()
    forget_deepspeed_groups()


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_flipped_byte_in_a_real_shard_resumes_from_the_previous_good_epoch(
    one_rank_group, settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real short DeepSpeed run writes digests with every epoch checkpoint. One byte of its
    newest epoch's optimizer shard is flipped: the next run of the key names that file in a
    warning, resumes from the previous good epoch in its own run folder, and its final weights
    are bit-identical to the uninterrupted run's (not built from the corrupt shard)."""
    import dataclasses
    import json
    import logging

    from train_faults import Trace
    from train_helpers import make_job

    from lima.train import checkpoint as ckpt
    from lima.train import layout
    from lima.train.launch import run_in_process_group

    recipe = {"zero_stage": 2, "epochs": 3, "eligible_epochs": [3], "rows": 16, "workers": 1}
    first = dataclasses.replace(
        make_job(tmp_path / "a", settings, run_name="train-k", **recipe),
        run_id="20260101T000000-aaaaaa",
    )
    run_in_process_group(first)
    key_dir = settings.artifacts_dir.resolve() / "lima" / layout.RUNS_DIR / "train-k"
    first_run = key_dir / first.run_id
    for epoch in (1, 2, 3):
        folder = first_run / layout.tag(epoch)
        assert ckpt.is_complete(folder) and (folder / layout.digest_file(0)).is_file()
    assert ckpt.stored_problems(pafs.LocalFileSystem(), str(first_run / "epoch-003")) == []

    shard = next((first_run / "epoch-003" / layout.DS_DIR).rglob("*optim_states.pt"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))

    trace = tmp_path / "trace.txt"
    probe = (Trace(str(trace)),)
    second = dataclasses.replace(
        make_job(tmp_path / "b", settings, run_name="train-k", callbacks=probe, **recipe),
        run_id="20260101T000100-bbbbbb",
    )
    with caplog.at_level(logging.WARNING, logger="lima.train"):
        summary = run_in_process_group(second)

    assert trace.read_text().splitlines() == ["resume after 2", "start 3"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"{shard}: sha256 differs" in w for w in warnings), warnings
    second_run = key_dir / second.run_id
    assert sorted(p.name for p in second_run.iterdir() if p.is_dir()) == ["epoch-003"]
    origin = json.loads((second_run / layout.RESUMED_FROM).read_text())
    assert origin == {"epoch": 2, "checkpoint": str(first_run / "epoch-002")}
    # Epochs 1-2 are the first run's, epoch 3 (the published model) is the second run's.
    assert [(e["epoch"], Path(e["checkpoint"]).parent.name) for e in summary["epochs"]] == [
        (1, first.run_id), (2, first.run_id), (3, second.run_id),
    ]  # fmt: skip
    assert shard.read_bytes() == bytes(data), "the damaged run folder is left as it was"
    resumed, straight = (
        _weights(second.output_dir / "epoch-3"),
        _weights(first.output_dir / "epoch-3"),
    )
    assert resumed.keys() == straight.keys()
    assert all(resumed[k].equal(straight[k]) for k in resumed), "weights differ after the resume"
    records = [
        json.loads(x) for x in (second.output_dir / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2, 3]
