"""Streamed epoch checkpoints (lima.train.upload) against a real moto S3 server: the upload
thread, multipart for large files, a bounded local scratch during a real DeepSpeed run, resume
from S3, and an endpoint that dies mid-upload (no epoch published, the error names the file)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from store_helpers import ACCESS, SECRET, FaultProxy, moto_endpoint, s3cfg
from test_integrity_checkpoints import one_rank_group

from lima.store import S3Backend, S3Connection
from lima.train import layout
from lima.train.callbacks import LoopCallback
from lima.train.upload import CheckpointUploader, CheckpointUploadError

__all__ = ["moto_endpoint", "one_rank_group", "s3cfg"]  # fixtures


def _backend(settings: Any, bucket: str | None = None) -> S3Backend:
    return S3Backend(S3Connection.from_settings(settings), bucket or f"t-{uuid.uuid4().hex[:12]}")


def test_uploader_streams_deletes_and_seals(s3cfg, tmp_path: Path) -> None:
    """A file larger than a part goes up in parts; each local copy is deleted once stored; the
    digest file and done marker come after the files."""
    backend = _backend(s3cfg)
    sizes: list[int] = []
    uploader = CheckpointUploader(
        backend, "runs/r1", rank=0, scratch=tmp_path / "scratch",
        on_uploaded=lambda key, size: sizes.append(size),
    )  # fmt: skip
    folder = uploader.folder(1)
    (folder / "ds").mkdir(parents=True)
    big = folder / "ds" / "optim.pt"
    big.write_bytes(b"x" * (17 << 20))  # > 2 parts of 8 MiB
    uploader.add(1, big)
    (folder / "state.json").write_text("{}")
    uploader.seal(1)
    uploader.wait()
    assert uploader.local_bytes() == 0 and not big.exists()
    keys = set(backend.list("runs/r1/"))
    assert keys == {
        "runs/r1/epoch-001/ds/optim.pt",
        "runs/r1/epoch-001/state.json",
        f"runs/r1/epoch-001/{layout.digest_file(0)}",
        f"runs/r1/epoch-001/{layout.done_marker(0)}",
    }
    stat = backend.stat("runs/r1/epoch-001/ds/optim.pt")
    assert stat is not None and stat.size == 17 << 20 and stat.etag.endswith("-3")  # multipart
    digests = json.loads(backend.get_bytes(f"runs/r1/epoch-001/{layout.digest_file(0)}"))
    assert digests["files"]["ds/optim.pt"]["size"] == 17 << 20
    assert sorted(sizes) == [2, 17 << 20]
    uploader.close()
    assert not (tmp_path / "scratch").exists()


def test_uploader_endpoint_dies_mid_file(s3cfg, moto_endpoint: str, tmp_path: Path) -> None:
    """The endpoint stops in the middle of a file: no done marker, the error names the local
    file and never the credentials; the local copy stays."""
    host, port = moto_endpoint.split(":")
    proxy = FaultProxy((host, int(port))).start()
    try:
        settings = s3cfg.model_copy(update={"s3_endpoint": proxy.endpoint})
        backend = _backend(settings)
        backend.ensure_bucket()
        uploader = CheckpointUploader(backend, "runs/r2", rank=1, scratch=tmp_path / "s")
        folder = uploader.folder(2)
        folder.mkdir(parents=True)
        shard = folder / "shard.pt"
        shard.write_bytes(b"y" * (3 << 20))
        proxy.cut_after = proxy.forwarded + (1 << 20)  # dies 1 MiB into the upload
        uploader.add(2, shard)
        uploader.seal(2)
        with pytest.raises(CheckpointUploadError) as info:
            uploader.wait()
        uploader.close(remove_scratch=False)
    finally:
        proxy.stop()
    message = str(info.value)
    assert str(shard) in message and "epoch 2, rank 1" in message, message
    assert SECRET not in message and ACCESS not in message
    assert shard.exists()
    direct = S3Backend(S3Connection.from_settings(s3cfg), backend.bucket)
    assert not any("done/" in key for key in direct.list("runs/r2/"))


# -- a real short DeepSpeed run (one rank, in-process group) -----------------------------------


@dataclasses.dataclass
class Crash(LoopCallback):
    """Raises at the start of `epoch` once the previous epochs are stored and retention ran
    (`Run.settle`): a deterministic crash between epochs."""

    epoch: int

    def on_epoch_start(self, run: Any, epoch: int) -> None:
        if epoch == self.epoch:
            run.settle()
            raise RuntimeError("injected crash")


@dataclasses.dataclass
class Trace(LoopCallback):
    lines: list[str]

    def on_train_start(self, run: Any, resumed_after: int | None) -> None:
        if resumed_after is not None:
            self.lines.append(f"resume after {resumed_after}")

    def on_epoch_start(self, run: Any, epoch: int) -> None:
        self.lines.append(f"start {epoch}")


@dataclasses.dataclass
class QueueSpy(LoopCallback):
    """Records (file name, queued while DeepSpeed's save_checkpoint was still running)."""

    seen: list[tuple[str, bool]]

    def on_train_start(self, run: Any, resumed_after: int | None) -> None:
        import inspect

        original = run.uploader.add

        def add(epoch: int, path: Path) -> None:
            during = any(f.function == "save_checkpoint" for f in inspect.stack())
            self.seen.append((Path(path).name, during))
            original(epoch, path)

        run.uploader.add = add


class ScratchSampler:
    """Samples the size of every checkpoint scratch folder under `root` while training runs."""

    def __init__(self, root: Path) -> None:
        self.root, self.peak, self.samples = root, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ScratchSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            total = 0
            for folder in self.root.glob("lima-ckpt-*"):
                for parent, _, files in os.walk(folder):  # tolerates folders deleted meanwhile
                    for name in files:
                        with contextlib.suppress(OSError):  # deleted meanwhile
                            total += os.path.getsize(os.path.join(parent, name))
            self.peak, self.samples = max(self.peak, total), self.samples + 1


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_real_run_streams_to_s3_with_bounded_scratch_and_resumes(
    one_rank_group, s3cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from train_helpers import make_job

    from lima.errors import StageError
    from lima.spec.resources import StorageSpec
    from lima.store import pyarrow_filesystem
    from lima.train import checkpoint as ckpt
    from lima.train.launch import run_in_process_group

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    name = f"stream-{uuid.uuid4().hex[:8]}"
    recipe = {"zero_stage": 2, "epochs": 3, "eligible_epochs": [3], "rows": 16, "workers": 1}
    recipe["keep_full_states"] = 1
    first = dataclasses.replace(
        make_job(tmp_path / "a", s3cfg, run_name=name, callbacks=(Crash(3),), **recipe),
        run_id="20260101T000000-aaaaaa",
    )
    with ScratchSampler(scratch) as sampler, pytest.raises((RuntimeError, StageError)):
        run_in_process_group(first)
    assert sampler.samples > 10

    fs, base = pyarrow_filesystem(s3cfg, StorageSpec())
    run_path = f"{base}/{layout.RUNS_DIR}/{name}/{first.run_id}"
    backend = _backend(s3cfg, base.split("/", 1)[0])
    run_key = run_path.split("/", 1)[1]
    sizes = {}
    for epoch in (1, 2):
        folder = f"{run_path}/{layout.tag(epoch)}"
        assert ckpt.stored_complete(fs, folder), epoch
        digests = json.loads(
            backend.get_bytes(f"{run_key}/{layout.tag(epoch)}/lima-sha256/rank-0.json")
        )
        sizes[epoch] = sum(f["size"] for f in digests["files"].values())
    assert ckpt.stored_problems(fs, f"{run_path}/epoch-002") == []
    # Retention (keep_full_states 1): epoch 1's shards left the store once epoch 2 was complete.
    keys = set(backend.list(f"{run_key}/"))
    assert not any(k.startswith(f"{run_key}/epoch-001/ds/") for k in keys)
    assert any(k.startswith(f"{run_key}/epoch-002/ds/") for k in keys)
    # Local scratch never held more than one epoch's files of the rank.
    assert 0 < sampler.peak <= max(sizes.values()), (sampler.peak, sizes)
    assert not list(scratch.glob("lima-ckpt-*")), "scratch removed at the end"

    lines: list[str] = []
    seen: list[tuple[str, bool]] = []
    probes = (Trace(lines), QueueSpy(seen))
    second = dataclasses.replace(
        make_job(tmp_path / "b", s3cfg, run_name=name, callbacks=probes, **recipe),
        run_id="20260101T000100-bbbbbb",
    )
    with ScratchSampler(scratch) as sampler:
        summary = run_in_process_group(second)
    assert lines == ["resume after 2", "start 3"]  # resumed from S3
    # Each shard was queued as soon as DeepSpeed wrote it, while the save was still running.
    assert any(name.endswith("optim_states.pt") and during for name, during in seen), seen
    assert [e["epoch"] for e in summary["epochs"]] == [1, 2, 3]
    assert (second.output_dir / "epoch-3" / "model.safetensors").is_file()
    second_key = f"{run_key.rsplit('/', 1)[0]}/{second.run_id}"
    third = json.loads(backend.get_bytes(f"{second_key}/epoch-003/{layout.digest_file(0)}"))
    assert sampler.peak <= sum(f["size"] for f in third["files"].values())


@dataclasses.dataclass
class CutUploads(LoopCallback):
    """At the start of `epoch`, the proxy in front of S3 dies after `after` more bytes."""

    proxy: Any
    epoch: int
    after: int

    def on_epoch_start(self, run: Any, epoch: int) -> None:
        if epoch == self.epoch:
            self.proxy.cut_after = self.proxy.forwarded + self.after


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_real_run_upload_dies_mid_epoch_publishes_nothing(
    one_rank_group, s3cfg, moto_endpoint: str, tmp_path: Path
) -> None:
    from train_helpers import make_job

    from lima.spec.resources import StorageSpec
    from lima.store import pyarrow_filesystem
    from lima.train import checkpoint as ckpt
    from lima.train.launch import run_in_process_group

    host, port = moto_endpoint.split(":")
    proxy = FaultProxy((host, int(port))).start()
    settings = s3cfg.model_copy(update={"s3_endpoint": proxy.endpoint})
    name = f"cut-{uuid.uuid4().hex[:8]}"
    job = dataclasses.replace(
        make_job(
            tmp_path, settings, run_name=name, zero_stage=2, epochs=2, rows=16, workers=1,
            callbacks=(CutUploads(proxy, epoch=1, after=50_000),),
        ),
        run_id="20260101T000000-cccccc",
    )  # fmt: skip
    # Nothing goes to S3 between the start of epoch 1 and its checkpoint: the endpoint dies
    # 50 kB into epoch 1's streamed files (while epoch 2 trains).
    started = time.monotonic()
    try:
        with pytest.raises(CheckpointUploadError) as info:
            run_in_process_group(job)
    finally:
        proxy.stop()
    assert time.monotonic() - started < 120
    message = str(info.value)
    print(message)
    assert "epoch-001" in message and "epoch 1, rank 0" in message, message
    assert SECRET not in message and ACCESS not in message
    fs, base = pyarrow_filesystem(s3cfg, StorageSpec())  # moto itself, not the dead proxy
    run_path = f"{base}/{layout.RUNS_DIR}/{name}/{job.run_id}"
    assert ckpt.stored_epochs(fs, run_path) == [] or not any(
        ckpt.stored_complete(fs, path) for _, path in ckpt.stored_epochs(fs, run_path)
    )
    assert ckpt.resume_candidates(fs, run_path) == []
