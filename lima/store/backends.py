"""Object-store backends: a local folder (`file://`) here, any S3 API in `lima.store.s3`.

A backend moves whole objects by key and knows nothing of manifests; `ArtifactStore` builds the
content-addressed, manifest-last protocol on top of it. Every transfer streams: memory stays flat
whatever the object's size. Reads never create anything (no folder, no bucket).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from lima.errors import IntegrityError, StoreError

CHUNK = 1 << 20
PART_SIZE = 8 << 20  # smallest multipart part: objects larger than this upload in parts
MAX_PARTS = 9000  # S3 allows 10,000 parts; keep a margin
TEMP_PREFIX = ".part-"  # local files being written; never listed, collected by `lima gc`
log = logging.getLogger("lima.store")


@dataclass(frozen=True)
class ObjectStat:
    key: str
    size: int
    etag: str
    """Changes whenever the object is rewritten (S3 ETag; size+mtime+inode locally)."""
    modified: float
    """Last write, seconds since the epoch."""


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
    def open(self, key: str) -> BinaryIO:
        """A streaming reader (close it); StoreError when the object is missing."""
        ...

    def exists(self, key: str) -> bool: ...
    def stat(self, key: str) -> ObjectStat | None: ...
    def list(self, prefix: str) -> Iterator[str]: ...
    def list_stats(self, prefix: str) -> Iterator[ObjectStat]: ...
    def delete(self, key: str) -> None: ...
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


def sha256_stream(source: BinaryIO) -> tuple[str, int]:
    """(sha256, size) of a stream, read in chunks."""
    digest, size = hashlib.sha256(), 0
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _file_mode() -> int:
    """0666 minus the process umask (0644 with the usual 022), as `open()` would create."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


def copy_verified(source: BinaryIO, dest: Path, sha256: str | None, label: str) -> None:
    """Stream `source` into `dest` (atomically) and check its digest when one is expected."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=TEMP_PREFIX)
    os.fchmod(fd, FILE_MODE)  # mkstemp makes 0600; a stored artifact is a normal file
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


@contextlib.contextmanager
def _local_io(what: str, where: Path) -> Iterator[None]:
    """An OS error of the local store (permissions, a full disk) as a StoreError naming the
    file, not a traceback."""
    try:
        yield
    except (StoreError, FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise  # the caller knows what a missing file means
    except OSError as error:
        raise StoreError(f"{what} {where}: {error.strerror or type(error).__name__}") from None


class FileBackend:
    """Objects as files under a root folder; writes are atomic renames."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def __repr__(self) -> str:
        return f"FileBackend(root={str(self.root)!r})"

    def path(self, key: str) -> Path:
        """The file of `key`; a key that resolves outside the root (`..`, links) is refused."""
        path = (self.root / key).resolve()
        if self.root not in path.parents and path != self.root:
            raise StoreError(f"key escapes the store root: {key}")
        return path

    _path = path  # older name, kept for callers outside the store

    def uri(self, key: str) -> str:
        return self.path(key).as_uri()

    def put_file(self, key: str, path: Path) -> None:
        with _local_io("write", self.path(key)), path.open("rb") as handle:
            copy_verified(handle, self.path(key), None, key)

    def put_bytes(self, key: str, data: bytes) -> None:
        with _local_io("write", self.path(key)):
            copy_verified(io.BytesIO(data), self.path(key), None, key)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX)
        os.fchmod(fd, FILE_MODE)
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
            with self.path(key).open("rb") as handle:
                copy_verified(handle, dest, sha256, self.uri(key))
        except FileNotFoundError:
            raise StoreError(f"object missing: {self.uri(key)}") from None

    def get_bytes(self, key: str) -> bytes | None:
        try:
            with _local_io("read", self.path(key)):
                return self.path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def open(self, key: str) -> BinaryIO:
        try:
            return self.path(key).open("rb")
        except FileNotFoundError:
            raise StoreError(f"object missing: {self.uri(key)}") from None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def stat(self, key: str) -> ObjectStat | None:
        try:
            info = self.path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        etag = f"{info.st_size}-{info.st_mtime_ns}-{info.st_ino}"
        return ObjectStat(key, info.st_size, etag, info.st_mtime)

    def list(self, prefix: str) -> Iterator[str]:
        for item in self.list_stats(prefix):
            yield item.key

    def list_stats(self, prefix: str, *, temporary: bool = False) -> Iterator[ObjectStat]:
        """Objects under `prefix` (`temporary=True`: only unfinished writes, for `lima gc`)."""
        base = self.path(prefix) if prefix else self.root
        with _local_io("list", base):
            found = list(self._walk(prefix, base, temporary))
        yield from found

    def _walk(self, prefix: str, base: Path, temporary: bool) -> Iterator[ObjectStat]:
        if base.is_file():
            found = self.stat(prefix)
            if found is not None and not temporary:
                yield found
            return
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if not path.is_file() or path.name.startswith(TEMP_PREFIX) != temporary:
                continue
            found = self.stat(path.relative_to(self.root).as_posix())
            if found is not None:
                yield found

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        keys = list(self.list(prefix))
        for key in keys:
            self.delete(key)
        base = self.path(prefix)
        if base.is_dir():
            shutil.rmtree(base, ignore_errors=True)
        return len(keys)
