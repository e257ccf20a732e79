"""Object-store backends: a local folder (`file://`) and any S3 API through the `minio` SDK.

A backend moves whole objects by key and knows nothing of manifests; `ArtifactStore` builds the
content-addressed, manifest-last protocol on top of it. Every transfer streams: memory stays flat
whatever the object's size.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, ClassVar, Protocol, TypeVar

from lima.errors import IntegrityError, StoreError

CHUNK = 1 << 20
PART_SIZE = 8 << 20  # smallest multipart part: objects larger than this upload in parts
MAX_PARTS = 9000  # S3 allows 10,000 parts; keep a margin
T = TypeVar("T")
log = logging.getLogger("lima.store")


class Backend(Protocol):
    """Whole-object operations by key (keys use `/`, never start with it)."""

    def uri(self, key: str) -> str: ...
    def put_file(self, key: str, path: Path) -> None: ...
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def put_if_absent(self, key: str, data: bytes) -> bool | None:
        """True: created. False: the key existed and nothing was written. None: written, then
        overwritten by a racing writer (a server that ignores conditional writes)."""
        ...

    def get_file(self, key: str, dest: Path, sha256: str | None = None) -> None: ...
    def get_bytes(self, key: str) -> bytes | None: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> Iterator[str]: ...
    def delete_prefix(self, prefix: str) -> int: ...


def part_size(size: int) -> int:
    """Multipart part size: PART_SIZE, or larger (whole MiB) when the object needs > MAX_PARTS.

    The minio client holds a few parts in memory at once (it uploads up to 3 in parallel), so
    memory use is a small multiple of this, whatever the object's size.
    """
    needed = -(-size // MAX_PARTS)
    return max(PART_SIZE, -(-needed // (1 << 20)) * (1 << 20))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def copy_verified(source: BinaryIO, dest: Path, sha256: str | None, label: str) -> None:
    """Stream `source` into `dest` (atomically) and check its digest when one is expected."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if sha256 is not None and digest.hexdigest() != sha256:
            raise IntegrityError(
                f"digest mismatch for {label}: expected sha256 {sha256[:12]}..., "
                f"got {digest.hexdigest()[:12]}... (object corrupted or replaced)"
            )
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class FileBackend:
    """Objects as files under a root folder; writes are atomic renames."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents and path != self.root:
            raise StoreError(f"key escapes the store root: {key}")
        return path

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def put_file(self, key: str, path: Path) -> None:
        with path.open("rb") as handle:
            copy_verified(handle, self._path(key), None, key)

    def put_bytes(self, key: str, data: bytes) -> None:
        copy_verified(io.BytesIO(data), self._path(key), None, key)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.link(tmp, target)  # link() fails if the target exists: first writer wins
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def get_file(self, key: str, dest: Path, sha256: str | None = None) -> None:
        try:
            with self._path(key).open("rb") as handle:
                copy_verified(handle, dest, sha256, self.uri(key))
        except FileNotFoundError:
            raise StoreError(f"object missing: {self.uri(key)}") from None

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix) if prefix else self.root
        if base.is_file():
            yield prefix
            return
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.startswith(".part-"):
                yield path.relative_to(self.root).as_posix()

    def delete_prefix(self, prefix: str) -> int:
        keys = list(self.list(prefix))
        for key in keys:
            self._path(key).unlink(missing_ok=True)
        base = self._path(prefix)
        if base.is_dir():
            shutil.rmtree(base, ignore_errors=True)
        return len(keys)


class S3Backend:
    """Objects in one bucket of an S3 API (MinIO, AWS, ...), through the `minio` SDK.

    Transient failures (connection errors, 5xx, throttling) are retried with exponential backoff;
    after `retries` attempts a StoreError names the object, never the credentials.
    """

    TRANSIENT_CODES: ClassVar[set[str]] = {
        "InternalError",
        "SlowDown",
        "ServiceUnavailable",
        "RequestTimeout",
        "Throttling",
        "TooManyRequests",
        "RequestTimeTooSkewed",
    }

    def __init__(
        self,
        endpoint: str,
        access_key: str | None,
        secret_key: str | None,
        bucket: str,
        *,
        secure: bool = True,
        region: str | None = None,
        retries: int = 5,
        backoff_s: float = 0.5,
        timeout_s: float = 30.0,
    ) -> None:
        import urllib3
        from minio import Minio

        self.endpoint, self.bucket, self.secure = endpoint, bucket, secure
        self.retries, self.backoff_s = retries, backoff_s
        # Our own retry loop owns retries; urllib3's would multiply them and hide the cause.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(timeout_s, 5.0), read=timeout_s),
            retries=False,
            maxsize=16,
        )
        self.client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )
        self._bucket_ready = False
        self._secrets = [s for s in (access_key, secret_key) if s]

    def __repr__(self) -> str:  # never show credentials
        return f"S3Backend(endpoint={self.endpoint!r}, bucket={self.bucket!r})"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _transient(self, error: Exception) -> bool:
        """Worth another attempt: the network, throttling, or a 5xx from the server or a proxy."""
        from minio.error import InvalidResponseError, S3Error, ServerError
        from urllib3.exceptions import HTTPError

        if isinstance(error, S3Error):
            status = getattr(error.response, "status", 0) or 0
            return error.code in self.TRANSIENT_CODES or status >= 500 or status == 429
        if isinstance(error, InvalidResponseError):  # non-XML reply, e.g. a load balancer's 502
            status = getattr(error, "_code", 0) or 0
            return status >= 500 or status == 429
        if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError)):
            return False  # a local file problem: trying again cannot help
        return isinstance(error, (ServerError, HTTPError, ConnectionError, TimeoutError, OSError))

    def _describe(self, error: Exception) -> str:
        """Type and S3 code or message of an error, with the credentials cut out.

        The original exception is not chained (`from None`): minio's exceptions carry the
        request and response, and nothing of them may reach a user's terminal or a run record.
        """
        code = getattr(error, "code", None)
        if isinstance(code, str):
            text = f"{type(error).__name__}: {code}"
        elif isinstance(error, ValueError):  # the client refused the arguments (bucket name, ...)
            text = f"{type(error).__name__}: {error}"
        else:
            text = type(error).__name__
        for secret in self._secrets:
            text = text.replace(secret, "**********")
        return text[:300]

    def _retry(self, what: str, call: Callable[[], T]) -> T:
        for attempt in range(self.retries + 1):
            try:
                return call()
            except IntegrityError:
                raise
            except Exception as error:
                if not self._transient(error) or attempt == self.retries:
                    raise StoreError(
                        f"{what} failed after {attempt + 1} attempt(s) ({self._describe(error)})"
                    ) from None
                delay = self.backoff_s * (2**attempt) * random.uniform(0.5, 1.0)  # jitter
                log.info(
                    "%s: transient %s, retry %d in %.2fs",
                    what,
                    type(error).__name__,
                    attempt + 1,
                    delay,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")

    def ensure_bucket(self) -> None:
        if self._bucket_ready:
            return

        def make() -> None:
            if not self.client.bucket_exists(self.bucket):
                from minio.error import S3Error

                try:
                    self.client.make_bucket(self.bucket)
                except S3Error as error:  # another writer created it first
                    if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise

        self._retry(f"create bucket s3://{self.bucket}", make)
        self._bucket_ready = True

    def put_file(self, key: str, path: Path) -> None:
        self.ensure_bucket()
        self._retry(
            f"upload {self.uri(key)}",
            lambda: self.client.fput_object(
                self.bucket, key, str(path), part_size=part_size(path.stat().st_size)
            ),
        )

    def put_bytes(self, key: str, data: bytes) -> None:
        self.ensure_bucket()
        self._retry(
            f"upload {self.uri(key)}",
            lambda: self.client.put_object(self.bucket, key, io.BytesIO(data), len(data)),
        )

    def put_if_absent(self, key: str, data: bytes) -> bool | None:
        """Create `key` unless it exists (see `Backend.put_if_absent` for the three answers).

        The PUT carries `If-None-Match: *` (AWS S3, MinIO and moto refuse it with 412 when the
        key exists, atomically). Some S3-compatible servers ignore that header and overwrite, so
        the object is read back: we report success only if the stored bytes are ours. On such a
        server two racing writers may both see success, but each then returns a manifest whose
        objects exist and verify, and the stored one is whichever landed last; nobody deletes
        objects that the stored manifest references (see ArtifactStore.publish).
        """
        from minio.error import S3Error

        self.ensure_bucket()
        if self.exists(key):  # the common case, and the only guard on servers without the header
            return False

        def put() -> bool:
            try:
                self._conditional_put(key, data)
                return True
            except S3Error as error:
                if error.code in ("PreconditionFailed", "ConditionalRequestConflict"):
                    return False
                raise

        if not self._retry(f"upload {self.uri(key)}", put):
            return False
        # Our bytes were visible for a while if the read-back shows another writer's: say so
        # (None), so the caller keeps the files a reader may already have been pointed at.
        return True if self.get_bytes(key) == data else None

    def _conditional_put(self, key: str, data: bytes) -> None:
        """PutObject with `If-None-Match: *`.

        minio's public `put_object` turns unknown headers into `x-amz-meta-*` user metadata, so
        the header would never reach the server as a condition; its single-request
        `_put_object` sends headers as given (minio 7.2). Without it we fall back to a plain PUT,
        which `put_if_absent` makes safe by the read-back.
        """
        headers = {"If-None-Match": "*", "Content-Type": "application/json"}
        put_raw = getattr(self.client, "_put_object", None)
        if put_raw is None:
            self.client.put_object(self.bucket, key, io.BytesIO(data), len(data))
            return
        put_raw(self.bucket, key, data, headers)

    def get_file(self, key: str, dest: Path, sha256: str | None = None) -> None:
        self.ensure_bucket()

        def fetch() -> None:
            response = self.client.get_object(self.bucket, key)
            try:
                copy_verified(response, dest, sha256, self.uri(key))
            finally:
                response.close()
                response.release_conn()

        self._retry(f"download {self.uri(key)}", fetch)

    def get_bytes(self, key: str) -> bytes | None:
        from minio.error import S3Error

        self.ensure_bucket()

        def fetch() -> bytes | None:
            try:
                response = self.client.get_object(self.bucket, key)
            except S3Error as error:
                if error.code == "NoSuchKey":
                    return None
                raise
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return self._retry(f"download {self.uri(key)}", fetch)

    def exists(self, key: str) -> bool:
        from minio.error import S3Error

        self.ensure_bucket()

        def stat() -> bool:
            try:
                self.client.stat_object(self.bucket, key)
                return True
            except S3Error as error:
                if error.code in ("NoSuchKey", "NotFound", "ResourceNotFound"):
                    return False
                raise

        return self._retry(f"stat {self.uri(key)}", stat)

    def list(self, prefix: str) -> Iterator[str]:
        self.ensure_bucket()
        objects = self._retry(
            f"list {self.uri(prefix)}",
            lambda: list(self.client.list_objects(self.bucket, prefix=prefix, recursive=True)),
        )
        for item in objects:
            yield item.object_name

    def delete_prefix(self, prefix: str) -> int:
        keys = list(self.list(prefix))
        for key in keys:
            self._retry(
                f"delete {self.uri(key)}", lambda k=key: self.client.remove_object(self.bucket, k)
            )
        return len(keys)
