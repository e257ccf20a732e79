"""The artifact store and URI helpers shared by every stage.

`open_store(settings, storage)` picks the backend: S3 (MinIO or any S3 API) when `LIMA_S3_ENDPOINT`
is set, else a local folder under `LIMA_WORK_DIR` (zero setup).
"""

from __future__ import annotations

import fnmatch
import glob as globlib
from pathlib import Path

from lima.errors import SourceError
from lima.settings import Settings, load_settings
from lima.spec import StorageSpec
from lima.store.artifacts import ArtifactStore, InputRef, Manifest, artifact_key, now_iso
from lima.store.backends import Backend, FileBackend, S3Backend

__all__ = [
    "ArtifactStore",
    "Backend",
    "FileBackend",
    "InputRef",
    "Manifest",
    "S3Backend",
    "artifact_key",
    "expand_uri",
    "localize_uri",
    "now_iso",
    "open_backend",
    "open_store",
    "pyarrow_filesystem",
    "read_uri",
    "s3_backend",
    "split_s3_uri",
]


def s3_backend(settings: Settings, bucket: str) -> S3Backend:
    if not settings.s3_endpoint:
        raise SourceError(f"s3://{bucket}/... needs LIMA_S3_ENDPOINT (and credentials) to be set")
    return S3Backend(
        settings.s3_endpoint,
        settings.s3_access_key.get_secret_value() if settings.s3_access_key else None,
        settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
        bucket,
        secure=settings.s3_secure,
        region=settings.s3_region,
        retries=settings.s3_retries,
        backoff_s=settings.s3_backoff_s,
        timeout_s=settings.s3_timeout_s,
    )


def open_backend(settings: Settings, storage: StorageSpec | None = None) -> Backend:
    storage = storage or StorageSpec()
    if settings.s3_endpoint:
        return s3_backend(settings, settings.bucket or storage.bucket)
    return FileBackend(settings.artifacts_dir)


def open_store(
    settings: Settings | None = None, storage: StorageSpec | None = None
) -> ArtifactStore:
    settings = settings or load_settings()
    storage = storage or StorageSpec()
    return ArtifactStore(open_backend(settings, storage), storage.prefix)


def split_s3_uri(uri: str) -> tuple[str, str]:
    rest = uri.removeprefix("s3://")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise SourceError(f"not an s3:// URI with a bucket: {uri}")
    return bucket, key


def expand_uri(uri: str, settings: Settings | None = None) -> list[str]:
    """All files a source URI names: a path, a glob, `s3://bucket/key` or `s3://bucket/glob*`.

    Raises SourceError naming the URI when it matches nothing, so a typo fails before any work.
    """
    if uri.startswith("s3://"):
        bucket, pattern = split_s3_uri(uri)
        backend = s3_backend(settings or load_settings(), bucket)
        literal = pattern.split("*")[0].split("?")[0].split("[")[0]
        keys = [k for k in backend.list(literal) if fnmatch.fnmatchcase(k, pattern) or k == pattern]
        found = [f"s3://{bucket}/{k}" for k in sorted(keys)]
    else:
        path = uri.removeprefix("file://")
        if any(ch in path for ch in "*?["):
            found = sorted(p for p in globlib.glob(path, recursive=True) if Path(p).is_file())
        elif Path(path).is_dir():
            found = sorted(str(p) for p in Path(path).rglob("*") if p.is_file())
        else:
            found = [path] if Path(path).is_file() else []
    if not found:
        raise SourceError(f"source not found: {uri} matches no file")
    return found


def localize_uri(uri: str, scratch: Path, settings: Settings | None = None) -> Path:
    """A local path for `uri`: itself, or a downloaded copy of an s3:// object (streamed)."""
    if not uri.startswith("s3://"):
        return Path(uri.removeprefix("file://"))
    bucket, key = split_s3_uri(uri)
    dest = scratch / "s3" / bucket / key
    if not dest.is_file():
        s3_backend(settings or load_settings(), bucket).get_file(key, dest)
    return dest


def read_uri(uri: str, settings: Settings | None = None) -> bytes:
    if uri.startswith("s3://"):
        bucket, key = split_s3_uri(uri)
        data = s3_backend(settings or load_settings(), bucket).get_bytes(key)
        if data is None:
            raise SourceError(f"not found: {uri}")
        return data
    path = Path(uri.removeprefix("file://"))
    if not path.is_file():
        raise SourceError(f"not found: {uri}")
    return path.read_bytes()


def pyarrow_filesystem(settings: Settings, storage: StorageSpec):
    """(filesystem, base path) for libraries that write through pyarrow (Ray Train checkpoints).

    S3 is reached with the endpoint override so MinIO works; the local backend is a LocalFileSystem
    rooted in the artifacts folder.
    """
    import pyarrow.fs as pafs

    if settings.s3_endpoint:
        fs = pafs.S3FileSystem(
            endpoint_override=settings.s3_endpoint,
            access_key=settings.s3_access_key.get_secret_value()
            if settings.s3_access_key
            else None,
            secret_key=settings.s3_secret_key.get_secret_value()
            if settings.s3_secret_key
            else None,
            scheme="https" if settings.s3_secure else "http",
            region=settings.s3_region or "us-east-1",
        )
        return fs, f"{settings.bucket or storage.bucket}/{storage.prefix}".rstrip("/")
    base = settings.artifacts_dir.resolve() / storage.prefix
    base.mkdir(parents=True, exist_ok=True)
    return pafs.LocalFileSystem(), str(base)
