"""`lima data push SRC s3://BUCKET/PREFIX`: copy local data into the artifact store's S3.

A cluster's Ray pods read inputs only from S3, so the demo data (or a team's own) is pushed once
and the Experiment names `s3://` URIs (examples/experiment-cluster.yaml). Each file keeps its
path relative to SRC under PREFIX; a file already there with the same size and content hash is
skipped, so pushing again is cheap and safe. Credentials come from LIMA_S3_* as for every run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from lima.errors import SourceError
from lima.settings import Settings, load_settings
from lima.store import s3_backend, split_s3_uri


@dataclass
class PushReport:
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_under(source: Path) -> list[Path]:
    """SRC itself (a file) or every file below it (a folder), hidden ones left out."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise SourceError(f"{source}: no such file or folder")
    return sorted(
        p
        for p in source.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(source).parts)
    )


def push(source: Path, destination: str, settings: Settings | None = None) -> PushReport:
    """Copy `source` (a file or folder) to `destination` (`s3://bucket/prefix`)."""
    if not destination.startswith("s3://"):
        raise SourceError(f"{destination}: the destination must be an s3:// URI")
    settings = settings or load_settings()
    bucket, prefix = split_s3_uri(destination)
    backend = s3_backend(settings, bucket)
    backend.ensure_bucket()
    report = PushReport()
    base = source if source.is_dir() else source.parent
    for path in files_under(source):
        relative = path.relative_to(base).as_posix()
        key = f"{prefix.rstrip('/')}/{relative}" if prefix else relative
        stat = backend.stat(key)
        if stat is not None and stat.size == path.stat().st_size and _same(backend, key, path):
            report.unchanged.append(backend.uri(key))
            continue
        backend.put_file(key, path)
        report.uploaded.append(backend.uri(key))
    return report


def _same(backend: object, key: str, path: Path) -> bool:
    """Same content: compare hashes (the object is re-read; demo-sized data only pays little)."""
    data = backend.get_bytes(key)  # type: ignore[attr-defined]
    return data is not None and hashlib.sha256(data).hexdigest() == _sha256(path)
