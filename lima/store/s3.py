"""The one S3 layer: credentials are read once (`S3Connection`), and both clients come from it.

`S3Connection.minio()` gives the client of `S3Backend` (artifacts, run records, leases);
`S3Connection.pyarrow()` gives the filesystem Ray Train writes checkpoints through. Neither the
connection nor the backend ever shows a credential: not in repr, not in errors, not in logs.

Buckets are created on the first write only: reading a missing bucket is "not found", so
`lima status` against a fresh endpoint creates nothing.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, TypeVar

from pydantic import SecretStr

from lima.errors import StoreError
from lima.settings import Settings
from lima.store.backends import ObjectStat, copy_verified, part_size

T = TypeVar("T")
log = logging.getLogger("lima.store")
MISSING_KEY = {"NoSuchKey", "NotFound", "ResourceNotFound", "NoSuchBucket"}
CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict"}


@dataclass(frozen=True)
class S3Connection:
    """Where the S3 API is and how to sign requests to it (from `LIMA_S3_*`)."""

    endpoint: str
    secure: bool = True
    region: str | None = None
    access_key: SecretStr | None = field(default=None, repr=False)
    secret_key: SecretStr | None = field(default=None, repr=False)
    retries: int = 5
    backoff_s: float = 0.5
    timeout_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Connection:
        if not settings.s3_endpoint:
            raise StoreError("S3 storage needs LIMA_S3_ENDPOINT (and credentials) to be set")
        return cls(
            endpoint=settings.s3_endpoint,
            secure=settings.s3_secure,
            region=settings.s3_region,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            retries=settings.s3_retries,
            backoff_s=settings.s3_backoff_s,
            timeout_s=settings.s3_timeout_s,
        )

    @property
    def secrets(self) -> list[str]:
        """Credential values, to cut out of any text that leaves the process."""
        found = (s.get_secret_value() for s in (self.access_key, self.secret_key) if s)
        return [s for s in found if s]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "**********")
        return text

    def _credential(self, which: SecretStr | None) -> str | None:
        return which.get_secret_value() if which else None

    def minio(self) -> Any:
        import urllib3
        from minio import Minio

        # Our own retry loop owns retries; urllib3's would multiply them and hide the cause.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(self.timeout_s, 5.0), read=self.timeout_s),
            retries=False,
            # Kept-alive connections per host: at least the operator's store threads per
            # endpoint (lima_operator.offload), or a burst opens a new connection per request.
            maxsize=32,
        )
        return Minio(
            self.endpoint,
            access_key=self._credential(self.access_key),
            secret_key=self._credential(self.secret_key),
            secure=self.secure,
            region=self.region,
            http_client=http,
        )

    def pyarrow(self) -> Any:
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(
            endpoint_override=self.endpoint,
            access_key=self._credential(self.access_key),
            secret_key=self._credential(self.secret_key),
            scheme="https" if self.secure else "http",
            region=self.region or "us-east-1",
            request_timeout=self.timeout_s,
            connect_timeout=min(self.timeout_s, 5.0),
        )


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

    def __init__(self, connection: S3Connection, bucket: str) -> None:
        self.connection, self.bucket = connection, bucket
        self.endpoint, self.secure = connection.endpoint, connection.secure
        self.retries, self.backoff_s = connection.retries, connection.backoff_s
        self.client = connection.minio()
        self._bucket_ready = False

    def __repr__(self) -> str:  # never show credentials
        return f"S3Backend(endpoint={self.endpoint!r}, bucket={self.bucket!r})"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    # -- retries ---------------------------------------------------------------------------------

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
        return self.connection.redact(text)[:300]

    def _retry(self, what: str, call: Callable[[], T]) -> T:
        """`call()`, retried on transient failures by the one policy (lima.retry); then a
        StoreError naming the object and the error's type, never the request or credentials."""
        from lima.retry import retrying

        tries = [0]

        def counted() -> T:
            tries[0] += 1
            return call()

        try:
            for attempt in retrying(
                what,
                attempts=self.retries + 1,
                transient=lambda e: isinstance(e, Exception) and self._transient(e),
                base_s=self.backoff_s,
            ):
                with attempt:
                    return counted()
        except StoreError:
            raise  # ours already (object missing, digest mismatch): says what it needs to
        except Exception as error:
            raise StoreError(
                f"{what} failed after {tries[0]} attempt(s) ({self._describe(error)})"
            ) from None
        raise AssertionError("unreachable")

    # -- writes (create the bucket on the first one) -------------------------------------------

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
        self.ensure_bucket()
        if self.exists(key):  # the common case, and the only guard on servers without the header
            return False
        if not self._conditional_put(key, data, {"If-None-Match": "*"}):
            return False
        # Our bytes were visible for a while if the read-back shows another writer's: say so
        # (None), so the caller keeps the files a reader may already have been pointed at.
        return True if self.get_bytes(key) == data else None

    def put_if_match(self, key: str, data: bytes, etag: str) -> bool:
        """Overwrite `key` only if its ETag is still `etag` (S3 `If-Match`; MinIO, AWS, moto).

        False when another writer changed or removed it first. Used to renew and take over
        leases without a lost update.
        """
        self.ensure_bucket()
        return self._conditional_put(key, data, {"If-Match": f'"{etag.strip(chr(34))}"'})

    def _conditional_put(self, key: str, data: bytes, condition: dict[str, str]) -> bool:
        """PutObject with a condition header; False when the server refuses it (412/409).

        minio's public `put_object` turns unknown headers into `x-amz-meta-*` user metadata, so
        the header would never reach the server as a condition; its single-request
        `_put_object` sends headers as given (minio 7.2).
        """
        from minio.error import S3Error

        headers = {**condition, "Content-Type": "application/json"}
        put_raw = getattr(self.client, "_put_object", None)
        if put_raw is None:
            raise StoreError("this minio client cannot send conditional writes (needs minio 7.2)")

        def put() -> bool:
            try:
                put_raw(self.bucket, key, data, headers)
                return True
            except S3Error as error:
                if error.code in CONFLICT or error.code in ("NoSuchKey",):
                    return False
                raise

        return self._retry(f"upload {self.uri(key)}", put)

    # -- reads (a missing bucket is an empty one) ------------------------------------------------

    def get_file(self, key: str, dest: Path, sha256: str | None = None) -> None:
        from minio.error import S3Error

        def fetch() -> None:
            try:
                response = self.client.get_object(self.bucket, key)
            except S3Error as error:
                if error.code in MISSING_KEY:
                    raise StoreError(f"object missing: {self.uri(key)}") from None
                raise
            try:
                copy_verified(response, dest, sha256, self.uri(key))
            finally:
                response.close()
                response.release_conn()

        try:
            self._retry(f"download {self.uri(key)}", fetch)
        except StoreError:
            raise

    def get_bytes(self, key: str) -> bytes | None:
        from minio.error import S3Error

        def fetch() -> bytes | None:
            try:
                response = self.client.get_object(self.bucket, key)
            except S3Error as error:
                if error.code in MISSING_KEY:
                    return None
                raise
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return self._retry(f"download {self.uri(key)}", fetch)

    def open(self, key: str) -> BinaryIO:
        """A streaming reader of `key` (close it); used to hash large objects without a copy."""
        from minio.error import S3Error

        def start() -> Any:
            try:
                return self.client.get_object(self.bucket, key)
            except S3Error as error:
                if error.code in MISSING_KEY:
                    raise StoreError(f"object missing: {self.uri(key)}") from None
                raise

        return self._retry(f"download {self.uri(key)}", start)

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def stat(self, key: str) -> ObjectStat | None:
        from minio.error import S3Error

        def stat() -> ObjectStat | None:
            try:
                info = self.client.stat_object(self.bucket, key)
            except S3Error as error:
                if error.code in MISSING_KEY:
                    return None
                raise
            modified = info.last_modified.timestamp() if info.last_modified else 0.0
            return ObjectStat(key, int(info.size or 0), (info.etag or "").strip('"'), modified)

        return self._retry(f"stat {self.uri(key)}", stat)

    def list(self, prefix: str) -> Iterator[str]:
        for item in self.list_stats(prefix):
            yield item.key

    def list_stats(self, prefix: str) -> Iterator[ObjectStat]:
        from minio.error import S3Error

        def listing() -> list[Any]:
            try:
                return list(self.client.list_objects(self.bucket, prefix=prefix, recursive=True))
            except S3Error as error:
                if error.code == "NoSuchBucket":
                    return []
                raise

        for item in self._retry(f"list {self.uri(prefix)}", listing):
            modified = item.last_modified.timestamp() if item.last_modified else 0.0
            etag = (item.etag or "").strip('"')
            yield ObjectStat(item.object_name, int(item.size or 0), etag, modified)

    # -- deletes -----------------------------------------------------------------------------------

    def delete(self, key: str) -> None:
        self._retry(f"delete {self.uri(key)}", lambda: self.client.remove_object(self.bucket, key))

    def delete_if_match(self, key: str, etag: str) -> bool:
        """Delete `key` only if it is still the version we wrote (DeleteObject `If-Match`)."""
        from minio.error import S3Error

        def delete() -> bool:
            try:
                self.client._execute(  # public remove_object sends no condition headers
                    "DELETE", self.bucket, key, headers={"If-Match": f'"{etag}"'}
                )
                return True
            except S3Error as error:
                if error.code in CONFLICT or error.code in MISSING_KEY:
                    return False
                raise

        return self._retry(f"delete {self.uri(key)}", delete)

    def delete_prefix(self, prefix: str) -> int:
        keys = list(self.list(prefix))
        for key in keys:
            self.delete(key)
        return len(keys)

    def abandoned_uploads(self, prefix: str) -> list[tuple[str, str, float]]:
        """(key, upload id, initiated) of every unfinished multipart upload under `prefix`:
        an upload killed mid-way keeps its parts (and their cost) until aborted."""
        from minio.error import S3Error

        def listing() -> list[tuple[str, str, float]]:
            found: list[tuple[str, str, float]] = []
            key_marker = upload_marker = None
            while True:
                try:
                    page = self.client._list_multipart_uploads(
                        self.bucket, prefix=prefix, key_marker=key_marker,
                        upload_id_marker=upload_marker,
                    )  # fmt: skip
                except S3Error as error:
                    if error.code == "NoSuchBucket":
                        return []
                    raise
                for upload in page.uploads:
                    when = upload.initiated_time.timestamp() if upload.initiated_time else 0.0
                    found.append((upload.object_name, upload.upload_id or "", when))
                if not page.is_truncated or not page.next_key_marker:
                    return found
                key_marker = page.next_key_marker
                upload_marker = getattr(page, "next_upload_id_marker", None)

        return self._retry(f"list uploads {self.uri(prefix)}", listing)

    def abort_upload(self, key: str, upload_id: str) -> None:
        self._retry(
            f"abort upload {self.uri(key)}",
            lambda: self.client._abort_multipart_upload(self.bucket, key, upload_id),
        )
