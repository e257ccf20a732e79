"""Issue 13: one lease per stage key, on the local store (flock) and on S3 (conditional writes).

On S3 the rules a stand-in could get wrong are the server's: `If-None-Match: *` refuses to
create an existing key and `If-Match: <etag>` refuses to replace a changed one (AWS S3
conditional writes; MinIO and moto's server implement both, checked in
test_store_backends.test_s3_conditional_writes_are_enforced_by_the_server).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO
from store_helpers import ACCESS, SECRET, file_store, moto_endpoint, s3_store, s3cfg

from lima.errors import LeaseTimeoutError
from lima.store import ArtifactStore, FileBackend

__all__ = ["moto_endpoint", "s3cfg"]  # fixtures


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest) -> ArtifactStore:
    if request.param == "file":
        return file_store(request.getfixturevalue("settings"))
    return s3_store(request.getfixturevalue("s3cfg"))


def test_a_second_holder_waits_for_the_first(store: ArtifactStore) -> None:
    order: list[str] = []
    holding = threading.Event()
    waited: list[dict] = []

    def first() -> None:
        with store.lease("train", "k1", poll_s=0.05):
            order.append("first in")
            holding.set()
            time.sleep(0.6)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    holding.wait(10)
    with store.lease("train", "k1", poll_s=0.05, on_wait=waited.append) as lease:
        order.append("second in")
    thread.join(10)
    assert order == ["first in", "first out", "second in"]
    assert lease.waited_s >= 0.3 and waited and "owner" in waited[0]
    with store.lease("train", "k1"):  # released: free again at once
        pass
    with store.lease("train", "other-key"), store.lease("select", "k1"):
        pass  # leases are per (stage, key)


def test_waiting_too_long_is_a_clear_error(store: ArtifactStore) -> None:
    held, second = store.lease("train", "k1"), store.lease("train", "k1", wait_s=0.3, poll_s=0.05)
    expected = r"leases/train/k1.* still held by .*:"
    with held, pytest.raises(LeaseTimeoutError, match=expected), second:
        pass


def test_many_contenders_hold_one_at_a_time(store: ArtifactStore) -> None:
    inside, most, errors = [0], [0], []
    lock = threading.Lock()

    def contend() -> None:
        try:
            with store.lease("curate", "k1", poll_s=0.02):
                with lock:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                time.sleep(0.05)
                with lock:
                    inside[0] -= 1
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=contend) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and most[0] == 1


HOLDER = r"""
import sys, time
from lima.settings import Settings
from lima.store import ArtifactStore, FileBackend, s3_backend
from pathlib import Path
kind, where = sys.argv[1], sys.argv[2]
backend = FileBackend(Path(where)) if kind == "file" else s3_backend(Settings(), where)
with ArtifactStore(backend, "lima").lease("train", "k1", ttl_s=1.0):
    print("held", flush=True)
    time.sleep(600)
"""


def hold_in_a_process(store: ArtifactStore) -> subprocess.Popen:
    backend = store.backend
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIMA_")}
    if isinstance(backend, FileBackend):
        args = ["file", str(backend.root)]
    else:
        args = ["s3", backend.bucket]
        env.update(
            LIMA_S3_ENDPOINT=f"http://{backend.endpoint}",
            LIMA_S3_ACCESS_KEY=ACCESS,
            LIMA_S3_SECRET_KEY=SECRET,
            LIMA_S3_REGION="us-east-1",
        )
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, *args], env=env, cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_a_killed_holder_does_not_block_the_key_forever(store: ArtifactStore) -> None:
    child = hold_in_a_process(store)
    try:
        # alive: its heartbeat keeps the lease
        with pytest.raises(LeaseTimeoutError), store.lease("train", "k1", wait_s=2.0, poll_s=0.1):
            pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    started = time.monotonic()
    with store.lease("train", "k1", wait_s=30, poll_s=0.1) as lease:
        assert not lease.lost
    # local: the kernel drops the flock at once; S3: taken over once the 1 s TTL has passed
    assert time.monotonic() - started < 10


def test_a_lease_taken_over_after_a_stall_is_marked_lost(s3cfg) -> None:
    """A holder frozen longer than its TTL loses the lease; its heartbeat notices."""
    store = s3_store(s3cfg)
    stalled = store.lease("train", "k1", ttl_s=0.8, poll_s=0.05)
    stalled.__enter__()
    stalled._impl._stop.set()  # the process freezes: no more renewals
    stalled._impl._thread.join(5)
    stalled._impl._stop.clear()
    with store.lease("train", "k1", ttl_s=5, wait_s=10, poll_s=0.05) as taker:
        assert stalled._impl.renew() is False  # the process wakes up: its version is gone
        assert stalled.lost and not taker.lost
    stalled.__exit__(None, None, None)  # releases nothing of the new holder's


def test_local_lock_files_stay_inside_the_store(settings) -> None:
    store = file_store(settings)
    with store.lease("train", "k1"):
        assert (store.backend.root / "lima/leases/train/k1.lock").is_file()
    assert Path(store.backend.root).is_dir()


def test_a_lease_left_behind_by_an_unreachable_store_is_not_waited_for(
    moto_endpoint: str, s3cfg
) -> None:
    """The store died while a stage ran, so its lease could not be released; when the store is
    back, the re-run in this process takes it over at once instead of waiting out the TTL."""
    from store_helpers import FaultProxy

    host, port = moto_endpoint.split(":")
    proxy = FaultProxy((host, int(port))).start()
    try:
        settings = s3cfg.model_copy(update={"s3_endpoint": proxy.endpoint, "s3_retries": 0})
        store = s3_store(settings)
        with store.lease("train", "k1", ttl_s=600):
            proxy.stop()  # the release below fails: the lease object stays
        proxy.start()
        assert store.backend.stat("lima/leases/train/k1.json") is not None
        started = time.monotonic()
        with store.lease("train", "k1", wait_s=5, poll_s=0.1):
            pass
        assert time.monotonic() - started < 3
    finally:
        proxy.stop()
