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
