"""Large objects stream: memory stays flat with object size, and S3 uploads go multipart.

Publishing and fetching run in a child process so that its peak RSS measures the client alone
(the moto server, which keeps objects in memory, lives in the test process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from store_helpers import ACCESS, SECRET, moto_endpoint

__all__ = ["moto_endpoint"]  # fixture

SIZE_MB = 200

CHILD = r"""
import json, os, sys, uuid
from pathlib import Path
from lima.settings import Settings
from lima.store import open_store
from lima.spec import StorageSpec

work, size_mb = Path(sys.argv[1]), int(sys.argv[2])
settings = Settings()
store = open_store(settings, StorageSpec(bucket="big-" + uuid.uuid4().hex[:8]))
def peak_mb():  # VmHWM: this process image's peak RSS (ru_maxrss would include the fork parent's)
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024

small = work / "small"; small.mkdir(parents=True)
(small / "a.bin").write_bytes(os.urandom(1 << 20))
m = store.publish("s", "warm", small, code_version="1", config={}, inputs=[], started_at="t")
store.fetch(m, work / "small-back")  # every code path imported and warmed up once
before = peak_mb()

big = work / "big"; big.mkdir()
block = os.urandom(1 << 20)
with open(big / "model.bin", "wb") as out:
    for i in range(size_mb):
        out.write(block[i % 7:] + block[: i % 7])  # distinct 1 MiB blocks, written streaming
m = store.publish("s", "big", big, code_version="1", config={}, inputs=[], started_at="t")
after_publish = peak_mb()
(big / "model.bin").unlink()
back = store.fetch(m, work / "back")
after_fetch = peak_mb()
entry = m.object("model.bin")
etag = ""
if hasattr(store.backend, "client"):
    etag = store.backend.client.stat_object(store.backend.bucket, entry.key).etag
print(json.dumps({
    "before": before, "after_publish": after_publish, "after_fetch": after_fetch,
    "size": entry.size, "fetched": (back / "model.bin").stat().st_size, "etag": etag,
}))
"""


def run_child(work: Path, env: dict[str, str]) -> dict[str, float]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LIMA_")}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(work), str(SIZE_MB)],
        env={**clean, **env, "LIMA_WORK_DIR": str(work / "lima")},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_flat(figures: dict[str, float]) -> None:
    size = SIZE_MB * (1 << 20)
    assert figures["size"] == figures["fetched"] == size
    growth = max(figures["after_publish"], figures["after_fetch"]) - figures["before"]
    print(f"peak RSS growth {growth:.1f} MB for a {SIZE_MB} MB object: {figures}")
    # The whole object would be 200 MB; a streaming client holds a few parts (16 MiB each).
    assert growth < SIZE_MB / 3, f"peak RSS grew {growth:.0f} MB for a {SIZE_MB} MB object"


@pytest.mark.slow
def test_s3_large_object_streams_and_uses_multipart(tmp_path: Path, moto_endpoint: str) -> None:
    figures = run_child(
        tmp_path,
        {
            "LIMA_S3_ENDPOINT": f"http://{moto_endpoint}",
            "LIMA_S3_ACCESS_KEY": ACCESS,
            "LIMA_S3_SECRET_KEY": SECRET,
            "LIMA_S3_REGION": "us-east-1",
        },
    )
    check_flat(figures)
    assert figures["etag"].endswith(f"-{-(-SIZE_MB // 8)}"), figures["etag"]  # 8 MiB parts


def test_file_backend_large_object_streams(tmp_path: Path) -> None:
    check_flat(run_child(tmp_path, {}))
