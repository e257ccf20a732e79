"""Fixtures shared by the whole suite: isolated settings, a real S3 endpoint, local Ray."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_SCHEMAS = REPO.parent / "shared" / "schemas"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings with a private work dir and no S3 (file backend), ignoring the caller's env."""
    from lima.settings import Settings

    for name in list(os.environ):
        if name.startswith("LIMA_"):
            monkeypatch.delenv(name)
    return Settings(work_dir=tmp_path / "work", _env_file=None)


@pytest.fixture
def s3_server() -> Iterator[dict[str, str]]:
    """A real S3 HTTP endpoint (moto's server) on 127.0.0.1, stopped after the test."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield {
            "endpoint": f"{host}:{port}",
            "access_key": "testing-access",
            "secret_key": "testing-secret-key",
        }
    finally:
        server.stop()


@pytest.fixture
def s3_settings(tmp_path: Path, s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    """Settings pointing at the moto S3 server (through the real minio client)."""
    from lima.settings import Settings

    for name in list(os.environ):
        if name.startswith("LIMA_"):
            monkeypatch.delenv(name)
    return Settings(
        work_dir=tmp_path / "work",
        s3_endpoint=s3_server["endpoint"],
        s3_access_key=s3_server["access_key"],
        s3_secret_key=s3_server["secret_key"],
        s3_secure=False,
        s3_region="us-east-1",
        _env_file=None,
    )


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """One local Ray instance for the session (4 logical CPUs so 2 train workers + driver fit)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA
