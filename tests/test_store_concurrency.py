"""Concurrent writers of the same content address end with exactly one consistent artifact.

Every writer uploads into its own attempt folder and then races on `put_if_absent(manifest)`;
losers adopt the winner's manifest and delete their own attempt.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO
from store_helpers import (
    ACCESS,
    SECRET,
    file_store,
    make_tree,
    moto_endpoint,
    publish,
    s3_store,
    s3cfg,
)

from lima.store import ArtifactStore, FileBackend, Manifest, S3Backend

__all__ = ["moto_endpoint", "s3cfg"]  # fixtures

WRITERS = 6


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest) -> ArtifactStore:
    if request.param == "file":
        return file_store(request.getfixturevalue("settings"))
    return s3_store(request.getfixturevalue("s3cfg"))


def check_one_result(store: ArtifactStore, returned: list[Manifest], tmp_path: Path) -> Manifest:
    manifests = [k for k in store.backend.list("lima/artifacts/") if k.endswith("manifest.json")]
    assert manifests == ["lima/artifacts/train/same-key/manifest.json"]
    stored = store.manifest("train", "same-key")
    assert stored is not None and stored.attempt in {m.attempt for m in returned}
    for manifest in returned:  # whatever a writer was told, its objects exist and verify
        store.fetch(manifest, tmp_path / "check" / manifest.attempt)
    dest = store.fetch(stored, tmp_path / "stored")
    writer = (dest / "who.txt").read_text()
    assert (dest / "data.bin").read_bytes() == writer.encode() * 10_000  # not a mix of writers
    attempts = {
        k.split("/objects/")[1].split("/")[0]
        for k in store.backend.list("lima/artifacts/")
        if "/objects/" in k
    }
    assert stored.attempt in attempts
    return stored


def test_threads_racing_on_one_key(store: ArtifactStore, tmp_path: Path) -> None:
    folders = [
        make_tree(
            tmp_path / f"w{i}", {"who.txt": f"w{i}".encode(), "data.bin": f"w{i}".encode() * 10_000}
        )
        for i in range(WRITERS)
    ]
    barrier = threading.Barrier(WRITERS)
    returned: list[Manifest] = []
    errors: list[BaseException] = []

    def write(folder: Path) -> None:
        try:
            barrier.wait()
            returned.append(publish(store, "train", "same-key", folder))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(f,)) for f in folders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and len(returned) == WRITERS
    stored = check_one_result(store, returned, tmp_path)
    if isinstance(store.backend, FileBackend):  # link() is atomic: every writer adopts the winner
        assert {m.attempt for m in returned} == {stored.attempt}
        assert (
            len(list((store.backend.root / "lima/artifacts/train/same-key/objects").iterdir())) == 1
        )


class IgnoresConditions(S3Backend):
    """The client side of an S3-compatible server that ignores `If-None-Match` (a plain PUT):
    put_if_absent must still leave one consistent manifest, through its read-back."""

    def _conditional_put(self, key: str, data: bytes, condition: dict[str, str]) -> bool:
        self.client.put_object(self.bucket, key, io.BytesIO(data), len(data))
        return True


def test_threads_racing_without_conditional_writes(s3cfg, tmp_path: Path) -> None:
    real = s3_store(s3cfg).backend
    backend = IgnoresConditions(real.connection, real.bucket)
    store = ArtifactStore(backend, "lima")
    folders = [
        make_tree(
            tmp_path / f"w{i}", {"who.txt": f"w{i}".encode(), "data.bin": f"w{i}".encode() * 10_000}
        )
        for i in range(WRITERS)
    ]
    barrier = threading.Barrier(WRITERS)
    returned: list[Manifest] = []

    def write(folder: Path) -> None:
        barrier.wait()
        returned.append(publish(store, "train", "same-key", folder))

    threads = [threading.Thread(target=write, args=(f,)) for f in folders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(returned) == WRITERS
    check_one_result(store, returned, tmp_path)


WRITER = r"""
import json, os, sys, time
from pathlib import Path
from lima.settings import Settings
from lima.store import ArtifactStore, s3_backend

folder, go, bucket = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
settings = Settings()
backend = s3_backend(settings, bucket)
store = ArtifactStore(backend, "lima")
backend.ensure_bucket()
(go.parent / f"ready-{os.getpid()}").touch()
while not go.exists():
    time.sleep(0.005)
m = store.publish(
    "train", "same-key", folder, code_version="1", config={}, inputs=[], started_at="t"
)
print(json.dumps({"attempt": m.attempt, "manifest": m.to_json()}))
"""


def test_processes_racing_on_one_key(s3cfg, tmp_path: Path) -> None:
    """Separate processes (as separate pods would) against one S3 endpoint."""
    store = s3_store(s3cfg)
    backend = store.backend
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIMA_")}
    env.update(
        LIMA_S3_ENDPOINT=f"http://{backend.endpoint}",
        LIMA_S3_ACCESS_KEY=ACCESS,
        LIMA_S3_SECRET_KEY=SECRET,
        LIMA_S3_REGION="us-east-1",
    )
    bucket = backend.bucket
    go = tmp_path / "go"
    children = []
    for i in range(3):
        folder = make_tree(
            tmp_path / f"p{i}", {"who.txt": f"p{i}".encode(), "data.bin": f"p{i}".encode() * 10_000}
        )
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(folder), str(go), bucket],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < len(children) and time.monotonic() < deadline:
        time.sleep(0.01)  # every writer imported and waiting: then start them at once
    go.touch()
    returned = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err[-2000:]
        returned.append(Manifest.from_json(json.loads(out.strip().splitlines()[-1])["manifest"]))
    check_one_result(store, returned, tmp_path)
