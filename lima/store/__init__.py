"""The artifact store and URI helpers shared by every stage.

`open_store(settings, storage)` picks the backend: S3 (MinIO or any S3 API) when `LIMA_S3_ENDPOINT`
is set, else a local folder under `LIMA_WORK_DIR` (zero setup).
"""

from __future__ import annotations

from lima.errors import StoreError
from lima.settings import Settings, load_settings
from lima.spec import StorageSpec
from lima.store.artifacts import ArtifactStore, InputRef, Manifest, artifact_key, now_iso
from lima.store.backends import Backend, FileBackend, ObjectStat
from lima.store.paths import check_prefix, join_key
from lima.store.s3 import S3Backend, S3Connection
from lima.store.sources import (
    expand_uri,
    fingerprint_sources,
    fingerprint_uri,
    localize_uri,
    matched_files,
    read_uri,
    s3_backend,
    split_s3_uri,
)

__all__ = [
    "ArtifactStore",
    "Backend",
    "FileBackend",
    "InputRef",
    "Manifest",
    "ObjectStat",
    "S3Backend",
    "S3Connection",
    "artifact_key",
    "expand_uri",
    "fingerprint_sources",
    "fingerprint_uri",
    "localize_uri",
    "matched_files",
    "now_iso",
    "open_backend",
    "open_store",
    "pyarrow_filesystem",
    "read_uri",
    "s3_backend",
    "split_s3_uri",
]


def storage_settings(settings: Settings, storage: StorageSpec) -> Settings:
    """The settings with `storage.endpoint` (an Experiment's own S3 endpoint) in force."""
    if not storage.endpoint:
        return settings
    # model_validate runs the endpoint normalisation (URL -> host:port + TLS flag) again.
    return type(settings).model_validate({**dict(settings), "s3_endpoint": storage.endpoint})


def open_backend(settings: Settings, storage: StorageSpec | None = None) -> Backend:
    storage = storage or StorageSpec()
    settings = storage_settings(settings, storage)
    if settings.s3_endpoint:
        return s3_backend(settings, settings.bucket or storage.bucket)
    return FileBackend(settings.artifacts_dir)


def open_store(
    settings: Settings | None = None, storage: StorageSpec | None = None
) -> ArtifactStore:
    settings = settings or load_settings()
    storage = storage or StorageSpec()
    return ArtifactStore(open_backend(settings, storage), storage.prefix)


def pyarrow_filesystem(settings: Settings, storage: StorageSpec):
    """(filesystem, base path) for libraries that write through pyarrow (Ray Train checkpoints).

    S3 is reached through the same `S3Connection` as the artifact store (one place reads the
    credentials); the local backend is a LocalFileSystem rooted in the artifacts folder. The base
    path is `<bucket or artifacts folder>/<prefix>`, and the prefix is checked so that nothing
    written under it can land outside the bucket or the store root.
    """
    import pyarrow.fs as pafs

    prefix = check_prefix(storage.prefix)
    settings = storage_settings(settings, storage)
    if settings.s3_endpoint:
        bucket = settings.bucket or storage.bucket
        return S3Connection.from_settings(settings).pyarrow(), join_key(bucket, prefix)
    root = settings.artifacts_dir.resolve()
    base = (root / prefix).resolve()
    if base != root and root not in base.parents:
        raise StoreError(f"storage prefix {storage.prefix!r} escapes the store root")
    base.mkdir(parents=True, exist_ok=True)  # only training calls this, to write
    return pafs.LocalFileSystem(), str(base)
