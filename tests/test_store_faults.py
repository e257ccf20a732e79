"""Transient S3 failures are retried with backoff; a dead endpoint gives a clean error, no
manifest, and a re-run after the endpoint comes back (same port) redoes only what is missing.

The faults are real network faults: a TCP proxy between the minio client and the moto server
resets connections, answers 503, or stops listening in the middle of an upload.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from runner_helpers import RUNS, chain, experiment, make_stage
from store_helpers import SECRET, FaultProxy, moto_endpoint, s3cfg

from lima.errors import StoreError
from lima.runner import run_experiment
from lima.settings import Settings
from lima.stages import StageContext
from lima.store import ArtifactStore, S3Backend, open_store, s3_backend

__all__ = ["moto_endpoint", "s3cfg"]  # fixtures


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    host, port = moto_endpoint.split(":")
    running = FaultProxy((host, int(port))).start()
    yield running
    running.stop()


def via(proxy: FaultProxy, settings: Settings, **overrides: object) -> Settings:
    bucket = f"f-{uuid.uuid4().hex[:12]}"
    return settings.model_copy(
        update={"s3_endpoint": proxy.endpoint, "bucket": bucket, **overrides}
    )


def test_reset_connections_are_retried(proxy: FaultProxy, s3cfg: Settings, caplog) -> None:
    backend = s3_backend(via(proxy, s3cfg, s3_retries=3, s3_backoff_s=0.1), "bucket-r1")
    backend.put_bytes("warm", b"x")  # bucket exists, a connection is pooled
    proxy.drop_connections()
    proxy.fail_next(2, "reset")
    before = proxy.accepted
    with caplog.at_level("INFO", "lima.retry"):
        backend.put_bytes("k", b"payload")
    assert proxy.accepted - before == 3  # two resets, then success
    retries = [r.getMessage() for r in caplog.records if r.name == "lima.retry"]
    assert len(retries) == 2 and "upload s3://bucket-r1/k: transient" in retries[0]
    assert backend.get_bytes("k") == b"payload"


def test_5xx_answers_are_retried(proxy: FaultProxy, s3cfg: Settings) -> None:
    backend = s3_backend(via(proxy, s3cfg, s3_retries=3), "bucket-r2")
    backend.put_bytes("k", b"v")
    proxy.drop_connections()
    proxy.fail_next(2, "503")
    assert backend.get_bytes("k") == b"v"
    assert proxy._fail == []  # both 503s were served


def test_retries_give_up_with_a_clean_error(proxy: FaultProxy, s3cfg: Settings) -> None:
    backend = s3_backend(via(proxy, s3cfg, s3_retries=2), "bucket-r3")
    backend.put_bytes("warm", b"x")
    proxy.drop_connections()
    proxy.fail_next(50, "reset")
    with pytest.raises(StoreError) as caught:
        backend.put_bytes("lost", b"v")
    message = str(caught.value)
    assert message.startswith("upload s3://bucket-r3/lost failed after 3 attempt(s) (")
    assert SECRET not in message and "testing-access" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_endpoint_down_mid_upload_then_rerun_does_only_what_is_missing(
    proxy: FaultProxy, s3cfg: Settings, ray_local: None, tmp_path: Path
) -> None:
    settings = via(proxy, s3cfg)
    RUNS.clear()

    def big_then_cut(ctx: StageContext) -> None:
        (ctx.output_dir / "big.bin").write_bytes(bytes(range(256)) * (96 << 10))  # 24 MiB
        if RUNS["train"] == 1:  # first run: the endpoint dies 10 MiB into this artifact's upload
            proxy.cut_after = proxy.forwarded + (10 << 20)

    stages = chain(train=make_stage("train", ("curate",), section="train", extra=big_then_cut))
    exp = experiment()
    first = run_experiment(exp, settings, stages=stages)
    assert [r.status for r in first] == ["done", "failed", "skipped", "skipped"]
    assert "failed after 3 attempt(s)" in first[1].message and SECRET not in first[1].message
    assert first[1].message.startswith("upload s3://")

    # Seen directly (not through the dead proxy): curate published, train has no manifest.
    direct = ArtifactStore(s3_backend(s3cfg, settings.bucket), "lima")
    assert direct.manifest("curate", first[0].key) is not None
    assert direct.manifest("train", first[1].key) is None
    assert list(direct.artifacts("train")) == []

    proxy.start()  # the endpoint is back, on the same port
    second = run_experiment(exp, settings, stages=stages)
    assert [r.status for r in second] == ["cached", "done", "done", "done"]
    assert second[1].key == first[1].key
    assert RUNS == {"curate": 1, "train": 2, "generate": 1, "judge": 1}
    store = open_store(settings, exp.spec.storage)
    manifest = store.manifest("train", second[1].key)
    store.fetch(manifest, tmp_path / "train")  # every object verifies
    assert (tmp_path / "train" / "big.bin").stat().st_size == 24 << 20
    assert [r.status for r in run_experiment(exp, settings, stages=stages)] == ["cached"] * 4
    assert isinstance(store.backend, S3Backend)


def test_manifest_put_that_landed_but_lost_its_reply(
    proxy: FaultProxy, s3cfg: Settings, tmp_path: Path
) -> None:
    """The retried conditional PUT finds the manifest present; it is ours, so publish keeps its
    objects instead of deleting them as a loser would."""
    from store_helpers import make_tree, publish

    settings = via(proxy, s3cfg)
    store = ArtifactStore(s3_backend(settings, settings.bucket), "lima")
    folder = make_tree(tmp_path / "out", {"a.txt": b"alpha", "b/c.bin": b"\x00" * 1000})
    proxy.lose_reply_to_put(b"/k1/manifest.json")
    manifest = publish(store, "train", "k1", folder)
    assert proxy._lose_reply == b""  # the fault did happen
    assert store.manifest("train", "k1") == manifest
    dest = store.fetch(manifest, tmp_path / "back")  # the objects are still there and verify
    assert (dest / "a.txt").read_bytes() == b"alpha"
