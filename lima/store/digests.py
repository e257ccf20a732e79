"""Digests for folders written outside the manifest protocol (Ray Train checkpoints).

Ray Train uploads each epoch's checkpoint folder itself (through pyarrow), so those files have no
manifest. Every training rank writes a digest file of its own for each epoch
(`lima.train.layout.digest_file`: `write_digests(folder, name)` on a local folder, or the same
document built while streaming the files, `lima.train.upload`), before its done marker; before
resuming from a checkpoint in storage, `checkpoint_problems(fs, path, names=...)` re-reads it and
says what is missing, resized or changed (`lima.train.checkpoint.stored_problems`). A checkpoint
with problems is not resumed from: the caller falls back to the previous epoch.

Works on any pyarrow filesystem: the local one and S3 (`lima.store.pyarrow_filesystem`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from lima.store.backends import CHUNK, sha256_file

DIGEST_FILE = "lima-sha256.json"


def folder_digests(folder: Path, skip: str = DIGEST_FILE) -> dict[str, dict[str, Any]]:
    """`{relative path: {sha256, size}}` of every file under `folder` (the digest file aside)."""
    found = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative != skip:
            found[relative] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return found


def write_digests(folder: Path, name: str = DIGEST_FILE) -> Path:
    """Write the digest file `name` (default `lima-sha256.json`) into `folder`, covering every
    other file there (call it last, once every shard is written)."""
    target = folder / name
    digests = folder_digests(folder, skip=name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"files": digests}, indent=1, sort_keys=True))
    return target


def checkpoint_problems(
    filesystem: Any,
    path: str,
    *,
    deep: bool = True,
    names: tuple[str, ...] = (DIGEST_FILE,),
    skip_prefixes: tuple[str, ...] = (),
) -> list[str]:
    """What is wrong with the checkpoint folder `path` on `filesystem` (empty: nothing).

    `names`: the digest files that together cover the folder (one per writer); files whose
    path starts with one of `skip_prefixes` are not checked (e.g. shards dropped on purpose).
    No digest file is a problem too: a checkpoint is complete only once its digests were
    written, so an upload cut short never looks resumable.
    """
    problems = []
    for name in names:
        problems += _problems(filesystem, path, name, deep, skip_prefixes)
    return problems


def _problems(
    filesystem: Any, path: str, name: str, deep: bool, skip_prefixes: tuple[str, ...]
) -> list[str]:
    import pyarrow.fs as pafs

    try:
        with filesystem.open_input_stream(f"{path}/{name}") as stream:
            expected = json.loads(stream.read())["files"]
    except (FileNotFoundError, OSError):
        return [f"{path}: no {name} (incomplete or not written by lima)"]
    except (ValueError, KeyError, TypeError):
        return [f"{path}/{name}: unreadable"]
    if not isinstance(expected, dict):
        return [f"{path}/{name}: unreadable"]
    expected = {k: v for k, v in expected.items() if not k.startswith(skip_prefixes)}
    problems = []
    infos = filesystem.get_file_info([f"{path}/{file}" for file in expected])
    for (file, entry), info in zip(expected.items(), infos, strict=True):
        if info.type != pafs.FileType.File:
            problems.append(f"{path}/{file}: missing")
        elif info.size != entry["size"]:
            problems.append(f"{path}/{file}: {info.size} bytes, expected {entry['size']}")
        elif deep and _stream_sha256(filesystem, f"{path}/{file}") != entry["sha256"]:
            problems.append(f"{path}/{file}: sha256 differs from {name}")
    return problems


def _stream_sha256(filesystem: Any, path: str) -> str:
    digest = hashlib.sha256()
    with filesystem.open_input_stream(path) as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
