"""Issue 13 fault injection: an S3 endpoint that hangs or dies mid-upload, corrupted objects,
concurrent runs of one experiment. Nothing is lost and nothing corrupt is served.

Faults are real: a TCP proxy between the minio client and moto's S3 server stalls or cuts the
connection; corrupted objects are rewritten behind the store's back; concurrent runs are threads
running the real runner on one store.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from runner_helpers import RUNS, chain, experiment, make_stage
from store_helpers import FaultProxy, corrupt, file_store, make_tree, moto_endpoint, publish, s3cfg

from lima.runner import RunOptions, StageRun, run_experiment
from lima.settings import Settings
from lima.stages import StageContext
from lima.store import ArtifactStore, open_store, s3_backend

__all__ = ["moto_endpoint", "s3cfg"]  # fixtures
with_ray = pytest.mark.usefixtures("ray_local")  # the runner starts stages on a local Ray


@pytest.fixture(autouse=True)
def _fresh_counts() -> None:
    RUNS.clear()


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    host, port = moto_endpoint.split(":")
    running = FaultProxy((host, int(port))).start()
    yield running
    running.stop()


@pytest.fixture(params=["file", "s3"])
def backend_settings(request: pytest.FixtureRequest) -> Settings:
    """Settings for a fresh store: the local folder, or a fresh bucket on the moto server."""
    if request.param == "file":
        return request.getfixturevalue("settings")
    s3 = request.getfixturevalue("s3cfg")
    return s3.model_copy(update={"bucket": f"c-{uuid.uuid4().hex[:12]}"})


def statuses(results: list[StageRun]) -> list[str]:
    return [r.status for r in results]


# -- an endpoint that hangs mid-upload ----------------------------------------------------------


def big_artifact(folder: Path) -> Path:
    return make_tree(folder, {"model.bin": bytes(range(256)) * (48 << 10), "meta.json": b"{}"})


def test_a_short_stall_mid_upload_only_delays_it(proxy, s3cfg, tmp_path: Path) -> None:
    settings = s3cfg.model_copy(update={"s3_endpoint": proxy.endpoint, "s3_timeout_s": 10.0})
    store = ArtifactStore(s3_backend(settings, f"p-{uuid.uuid4().hex[:10]}"), "lima")
    store.backend.ensure_bucket()
    proxy.pause_after, proxy.pause_s = proxy.forwarded + (4 << 20), 1.5
    started = time.perf_counter()
    manifest = publish(store, "train", "k1", big_artifact(tmp_path / "out"))
    assert time.perf_counter() - started >= 1.5 and proxy.pause_after is None
    store.verify(store.manifest("train", "k1"), deep=True)
    assert manifest.size == (12 << 20) + 2


def test_a_stall_longer_than_the_timeout_is_retried_and_nothing_partial_is_served(
    proxy, s3cfg, tmp_path: Path, caplog
) -> None:
    settings = s3cfg.model_copy(
        # 2 s and 5 retries: a loaded CI machine must not time out the requests around the stall
        update={"s3_endpoint": proxy.endpoint, "s3_timeout_s": 2.0, "s3_retries": 5}
    )
    store = ArtifactStore(s3_backend(settings, f"p-{uuid.uuid4().hex[:10]}"), "lima")
    store.backend.ensure_bucket()
    proxy.pause_after, proxy.pause_s = proxy.forwarded + (4 << 20), 8.0
    with caplog.at_level("INFO", "lima.retry"):
        publish(store, "train", "k1", big_artifact(tmp_path / "out"))
    assert proxy.pause_after is None  # the stall happened
    retried = [r.getMessage() for r in caplog.records if r.name == "lima.retry"]
    assert any("model.bin: transient" in line for line in retried)  # the stalled upload, again
    stored = store.manifest("train", "k1")
    store.verify(stored, deep=True)
    back = store.fetch(stored, tmp_path / "back")
    assert (back / "model.bin").read_bytes() == bytes(range(256)) * (48 << 10)


# -- corrupted objects ----------------------------------------------------------------------------


@with_ray
def test_a_cache_hit_with_a_lost_object_is_recomputed(backend_settings: Settings) -> None:
    exp, stages = experiment(), chain()
    first = run_experiment(exp, backend_settings, stages=stages)
    store = open_store(backend_settings, exp.spec.storage)
    train = store.manifest("train", first[1].key)
    store.backend.delete(train.objects[0].key)  # a lost object: the cheap check sees it
    second = run_experiment(exp, backend_settings, stages=stages)
    assert statuses(second) == ["cached", "done", "cached", "cached"]
    assert RUNS == {"curate": 1, "train": 2, "generate": 1, "judge": 1}
    store.verify(store.manifest("train", first[1].key), deep=True)


@with_ray
def test_a_flipped_byte_is_found_by_verify_and_recomputed(backend_settings: Settings) -> None:
    exp, stages = experiment(), chain()
    first = run_experiment(exp, backend_settings, stages=stages)
    store = open_store(backend_settings, exp.spec.storage)
    corrupt(store, store.manifest("curate", first[0].key).objects[0].key)
    cheap = run_experiment(exp, backend_settings, stages=stages)
    assert statuses(cheap) == ["cached"] * 4  # same size: only hashing can tell
    verified = run_experiment(exp, backend_settings, stages=stages, options=RunOptions(verify=True))
    assert statuses(verified) == ["done", "cached", "cached", "cached"]  # same content again
    assert RUNS["curate"] == 2
    store.verify(store.manifest("curate", first[0].key), deep=True)


# -- concurrent runs ------------------------------------------------------------------------------


def slow(ctx: StageContext) -> None:
    time.sleep(0.4)  # long enough for the two runs to overlap on every stage


@with_ray
def test_two_concurrent_runs_compute_each_stage_once(backend_settings: Settings) -> None:
    stages = chain(
        curate=make_stage("curate", extra=slow),
        train=make_stage("train", ("curate",), section="train", extra=slow),
    )
    exp = experiment()
    results: list[list[StageRun]] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        results.append(run_experiment(exp, backend_settings, stages=stages))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert RUNS == {"curate": 1, "train": 1, "generate": 1, "judge": 1}
    assert sorted(statuses(r)[0] for r in results) == ["cached", "done"]
    assert [r.key for r in results[0]] == [r.key for r in results[1]]
    store = open_store(backend_settings, exp.spec.storage)
    for result in results[0]:
        store.verify(store.manifest(result.stage, result.key), deep=True)


@with_ray
def test_a_waiting_run_adopts_what_the_first_one_published(settings: Settings) -> None:
    """The second run blocks on the lease while the first computes, then serves its artifact."""
    exp = experiment()
    store = file_store(settings)
    stages = chain(curate=make_stage("curate", extra=slow))
    key = None

    def hold() -> None:
        nonlocal key
        results = run_experiment(exp, settings, stages=stages)
        key = results[0].key

    first = threading.Thread(target=hold)
    first.start()
    time.sleep(0.1)
    second = run_experiment(exp, settings, stages=stages)
    first.join(60)
    assert second[0].status == "cached" and second[0].key == key
    assert RUNS["curate"] == 1
    assert store.manifest("curate", key) is not None


@with_ray
def test_a_truncated_manifest_is_recomputed_and_replaced(backend_settings: Settings) -> None:
    exp, stages = experiment(), chain()
    first = run_experiment(exp, backend_settings, stages=stages)
    store = open_store(backend_settings, exp.spec.storage)
    manifest_key = store.manifest_key("generate", first[2].key)
    raw = store.backend.get_bytes(manifest_key)
    store.backend.put_bytes(manifest_key, raw[: len(raw) // 3])  # a write cut short
    second = run_experiment(exp, backend_settings, stages=stages)
    assert statuses(second) == ["cached", "cached", "done", "cached"]
    assert store.manifest("generate", first[2].key).digest == first[2].digest
