"""Digests for folders written outside the manifest protocol (Ray Train checkpoints).

Ray Train uploads each epoch's checkpoint folder itself (through pyarrow), so those files have no
manifest. The training loop calls `write_digests(folder)` on the local checkpoint folder before
handing it to Ray; before resuming from a checkpoint in storage, `checkpoint_problems(fs, path)`
re-reads it and says what is missing, resized or changed. A checkpoint with problems is not
resumed from: the caller falls back to the previous epoch.

Works on any pyarrow filesystem: the local one and S3 (`lima.store.pyarrow_filesystem`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from lima.store.backends import CHUNK, sha256_file

DIGEST_FILE = "lima-sha256.json"


def folder_digests(folder: Path) -> dict[str, dict[str, Any]]:
    """`{relative path: {sha256, size}}` of every file under `folder` (the digest file aside)."""
    found = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative != DIGEST_FILE:
            found[relative] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return found


def write_digests(folder: Path) -> Path:
    """Write `lima-sha256.json` into `folder` (call it last, once every shard is written)."""
    target = folder / DIGEST_FILE
    target.write_text(json.dumps({"files": folder_digests(folder)}, indent=1, sort_keys=True))
    return target


def checkpoint_problems(filesystem: Any, path: str, *, deep: bool = True) -> list[str]:
    """What is wrong with the checkpoint folder `path` on `filesystem` (empty: nothing).

    No digest file is a problem too: a checkpoint is complete only once its digests were
    written, so an upload cut short never looks resumable.
    """
    import pyarrow.fs as pafs

    try:
        with filesystem.open_input_stream(f"{path}/{DIGEST_FILE}") as stream:
            expected = json.loads(stream.read())["files"]
    except (FileNotFoundError, OSError):
        return [f"{path}: no {DIGEST_FILE} (incomplete or not written by lima)"]
    except (ValueError, KeyError, TypeError):
        return [f"{path}/{DIGEST_FILE}: unreadable"]
    problems = []
    infos = filesystem.get_file_info([f"{path}/{name}" for name in expected])
    for (name, entry), info in zip(expected.items(), infos, strict=True):
        if info.type != pafs.FileType.File:
            problems.append(f"{path}/{name}: missing")
        elif info.size != entry["size"]:
            problems.append(f"{path}/{name}: {info.size} bytes, expected {entry['size']}")
        elif deep and _stream_sha256(filesystem, f"{path}/{name}") != entry["sha256"]:
            problems.append(f"{path}/{name}: sha256 differs from {DIGEST_FILE}")
    return problems


def _stream_sha256(filesystem: Any, path: str) -> str:
    digest = hashlib.sha256()
    with filesystem.open_input_stream(path) as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
