"""Input files named by URIs (sources, prompt sets, models): matching, reading, fingerprinting.

A source URI is a path, a glob, `s3://bucket/key` or `s3://bucket/glob*`. `fingerprint_uri`
describes the content behind it (per matched file: size and a content hash, or the S3 ETag), so
that a stage key that includes it changes when a file changes at the same URI.
"""

from __future__ import annotations

import fnmatch
import glob as globlib
import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lima.errors import SourceError
from lima.settings import Settings, load_settings
from lima.store.backends import CHUNK, sha256_file
from lima.store.s3 import S3Backend, S3Connection

FULL_HASH_BYTES = 256 << 20
"""Local files up to this size are hashed whole (about 0.3 s per 256 MiB); larger ones by size
plus 1 MiB samples at the start, middle and end, plus their modification time."""
SAMPLE = 1 << 20


@dataclass(frozen=True)
class MatchedFile:
    uri: str
    """The file's own URI (local path or s3://bucket/key)."""
    name: str
    """Its path relative to the fixed part of the pattern: stable across machines."""
    size: int
    etag: str | None = None
    """S3 ETag (content-derived); None for local files."""


def s3_backend(settings: Settings, bucket: str) -> S3Backend:
    if not settings.s3_endpoint:
        raise SourceError(f"s3://{bucket}/... needs LIMA_S3_ENDPOINT (and credentials) to be set")
    return S3Backend(S3Connection.from_settings(settings), bucket)


def split_s3_uri(uri: str) -> tuple[str, str]:
    rest = uri.removeprefix("s3://")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise SourceError(f"not an s3:// URI with a bucket: {uri}")
    return bucket, key


def _fixed_part(pattern: str) -> str:
    """`data/se/*.xml` -> `data/se/`: what precedes the first wildcard."""
    return pattern.split("*")[0].split("?")[0].split("[")[0]


def matched_files(uri: str, settings: Settings | None = None) -> list[MatchedFile]:
    """Every file `uri` names, sorted; SourceError naming the URI when it matches none."""
    if uri.startswith("s3://"):
        found = _s3_matches(uri, settings or load_settings())
    else:
        found = _local_matches(uri.removeprefix("file://"))
    if not found:
        raise SourceError(f"source not found: {uri} matches no file")
    return found


def _s3_matches(uri: str, settings: Settings) -> list[MatchedFile]:
    bucket, pattern = split_s3_uri(uri)
    literal = _fixed_part(pattern)
    base = literal.rsplit("/", 1)[0] + "/" if "/" in literal else ""
    return [
        MatchedFile(f"s3://{bucket}/{item.key}", item.key.removeprefix(base), item.size, item.etag)
        for item in sorted(s3_backend(settings, bucket).list_stats(literal), key=lambda i: i.key)
        if fnmatch.fnmatchcase(item.key, pattern) or item.key == pattern
    ]


def _local_matches(path: str) -> list[MatchedFile]:
    if any(ch in path for ch in "*?["):
        files = sorted(Path(p) for p in globlib.glob(path, recursive=True) if Path(p).is_file())
        base = Path(_fixed_part(path) or ".")
        base = base if _fixed_part(path).endswith("/") else base.parent
    elif Path(path).is_dir():
        files, base = sorted(p for p in Path(path).rglob("*") if p.is_file()), Path(path)
    else:
        files, base = ([Path(path)] if Path(path).is_file() else []), Path(path).parent
    return [MatchedFile(str(f), _relative(f, base), f.stat().st_size) for f in files]


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.name


def expand_uri(uri: str, settings: Settings | None = None) -> list[str]:
    """All files a source URI names: a path, a glob, `s3://bucket/key` or `s3://bucket/glob*`.

    Raises SourceError naming the URI when it matches nothing, so a typo fails before any work.
    """
    return [match.uri for match in matched_files(uri, settings)]


def localize_uri(uri: str, scratch: Path, settings: Settings | None = None) -> Path:
    """A local path for `uri`: itself, or a downloaded copy of an s3:// object (streamed).

    A copy is reused only while the object's ETag is the one it was downloaded at: a file
    replaced at the same URI is downloaded again, never served stale.
    """
    if not uri.startswith("s3://"):
        return Path(uri.removeprefix("file://"))
    bucket, key = split_s3_uri(uri)
    root = (scratch / "s3").resolve()
    dest = (root / bucket / key).resolve()
    if root not in dest.parents:
        raise SourceError(f"{uri}: the key leaves the download folder")
    backend = s3_backend(settings or load_settings(), bucket)
    remote = backend.stat(key)
    if remote is None:
        raise SourceError(f"not found: {uri}")
    stamp = dest.with_name(dest.name + ".etag")
    fresh = dest.is_file() and stamp.is_file() and stamp.read_text() == remote.etag
    if not fresh or dest.stat().st_size != remote.size:
        backend.get_file(key, dest)
        stamp.write_text(remote.etag)
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


# -- fingerprints --------------------------------------------------------------------------------

_LOCAL_DIGESTS: dict[tuple[str, int, int, int], str] = {}
"""(path, size, mtime_ns, inode) -> digest: the key is computed several times per run."""


def local_digest(path: Path) -> str:
    """sha256 of the whole file, or for a large file of size, mtime and three samples."""
    info = path.stat()
    memo = (str(path.resolve()), info.st_size, info.st_mtime_ns, info.st_ino)
    if memo not in _LOCAL_DIGESTS:
        if info.st_size <= FULL_HASH_BYTES:
            _LOCAL_DIGESTS[memo] = "sha256:" + sha256_file(path)
        else:
            _LOCAL_DIGESTS[memo] = "sampled:" + _sampled(path, info.st_size, info.st_mtime_ns)
    return _LOCAL_DIGESTS[memo]


def _sampled(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256(f"{size}:{mtime_ns}".encode())
    with path.open("rb") as handle:
        for offset in (0, size // 2, max(0, size - SAMPLE)):
            handle.seek(offset)
            digest.update(handle.read(min(SAMPLE, CHUNK)))
    return digest.hexdigest()


# A long-lived process (the operator) may reuse an S3 listing for a few seconds: a hundred
# Experiments naming the same sources then cost one LIST per source, not a hundred. Off (0 s)
# unless that process asks (`reuse_s3_fingerprints`); a run always lists afresh.
_S3_REUSE = {"seconds": 0.0}
_S3_FINGERPRINTS: dict[tuple[str, str | None], tuple[float, list[dict[str, Any]]]] = {}
_S3_LISTING: dict[tuple[str, str | None], threading.Lock] = {}  # one listing at a time per URI


def reuse_s3_fingerprints(seconds: float) -> None:
    """Reuse an s3:// fingerprint for `seconds` in this process (0: never)."""
    _S3_REUSE["seconds"] = seconds
    _S3_FINGERPRINTS.clear()


def fingerprint_uri(uri: str, settings: Settings | None = None) -> list[dict[str, Any]]:
    """What is behind `uri` now: per matched file its relative name, size and content digest
    (sha256 locally, the ETag on S3). Machine-independent for the same content."""
    if _S3_REUSE["seconds"] > 0 and uri.startswith("s3://"):
        memo = (uri, settings.s3_endpoint if settings else None)
        with _S3_LISTING.setdefault(memo, threading.Lock()):  # concurrent askers wait for one
            seen = _S3_FINGERPRINTS.get(memo)
            if seen is not None and time.monotonic() - seen[0] < _S3_REUSE["seconds"]:
                return seen[1]
            found = _fingerprint(uri, settings)
            _S3_FINGERPRINTS[memo] = (time.monotonic(), found)
            return found
    return _fingerprint(uri, settings)


def _fingerprint(uri: str, settings: Settings | None) -> list[dict[str, Any]]:
    found = []
    for match in matched_files(uri, settings):
        content = f"etag:{match.etag}" if match.etag is not None else local_digest(Path(match.uri))
        found.append({"file": match.name, "size": match.size, "content": content})
    return found


def fingerprint_sources(sources: list[Any], settings: Settings | None = None) -> dict[str, Any]:
    """`{source name: fingerprint}` for the curate key (spec.data.sources)."""
    settings = settings if settings is not None else _settings_if_needed(sources)
    return {source.name: fingerprint_uri(source.uri, settings) for source in sources}


def _settings_if_needed(sources: list[Any]) -> Settings | None:
    return load_settings() if any(s.uri.startswith("s3://") for s in sources) else None


__all__ = [
    "MatchedFile",
    "expand_uri",
    "fingerprint_sources",
    "fingerprint_uri",
    "localize_uri",
    "matched_files",
    "read_uri",
    "s3_backend",
    "split_s3_uri",
]
