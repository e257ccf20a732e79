"""Streaming checkpoint uploads: one rank's epoch files leave local scratch as soon as written.

Each rank owns a `CheckpointUploader` with one background thread. The training thread writes an
epoch's files into `<scratch>/epoch-NNN/` and queues each as soon as it is complete (DeepSpeed's
shard files right after `checkpoint_engine.save` returns, `stream_saves`; the rest by `add_folder`).
The thread hashes a file (sha256, size), uploads it through the artifact store's backend (S3:
`S3Backend.put_file`, multipart with bounded parts, retried by `lima.retry`; local store:
`FileBackend`), and deletes the local copy once the upload returned. Training goes on meanwhile.

`seal(epoch)` queues, after the files, this rank's digest file and then its done marker
(`lima.train.layout`): a rank's marker exists only once every one of its files is stored, and an
epoch counts as complete only when every rank's marker is there (`checkpoint.stored_complete`),
so a crash or a failed upload never publishes a partial epoch.

The training thread calls `wait()` before it writes the next epoch (`loop.Run.settle`), so local
scratch holds at most one epoch's files of this rank (rank 0: plus its HF export and state) at
any time. A failed upload stops the thread; `wait()` raises `CheckpointUploadError`, which names
the local file and the epoch, never a credential.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lima.errors import StoreError
from lima.store.backends import sha256_file
from lima.train import layout

log = logging.getLogger("lima.train")


class CheckpointUploadError(StoreError):
    """An epoch checkpoint file could not be uploaded (the message names the file)."""


@dataclass(frozen=True)
class _File:
    epoch: int
    path: Path
    relative: str  # inside the epoch folder


@dataclass(frozen=True)
class _Seal:
    epoch: int


class CheckpointUploader:
    """One rank's background uploader of epoch checkpoint files (see the module docstring).

    `backend`: a store backend (`put_file`, `put_bytes`); `prefix`: the run folder's key in it.
    """

    def __init__(
        self,
        backend: Any,
        prefix: str,
        rank: int,
        scratch: Path | None = None,
        on_uploaded: Callable[[str, int], None] | None = None,
    ) -> None:
        self.backend, self.prefix, self.rank = backend, prefix.strip("/"), rank
        self.scratch = Path(scratch or tempfile.mkdtemp(prefix=f"lima-ckpt-r{rank}-"))
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.on_uploaded = on_uploaded
        """Called (key, size) after each upload: tests count bytes with it."""
        self.sealed: list[int] = []
        """Epochs whose done marker this rank stored."""
        self._queue: queue.Queue[_File | _Seal | None] = queue.Queue()
        self._queued: set[Path] = set()
        self._digests: dict[int, dict[str, dict[str, Any]]] = {}
        self._error: CheckpointUploadError | None = None
        self._thread = threading.Thread(
            target=self._work, name=f"lima-ckpt-upload-r{rank}", daemon=True
        )
        self._thread.start()

    # -- the training thread -----------------------------------------------------------------

    def folder(self, epoch: int) -> Path:
        """Where this rank writes `epoch`'s files (the epoch folder's layout, locally)."""
        return self.scratch / layout.tag(epoch)

    def key(self, epoch: int, relative: str) -> str:
        name = f"{layout.tag(epoch)}/{relative}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def add(self, epoch: int, path: Path) -> None:
        """Queue one finished file of `epoch`'s folder (once; later calls are ignored)."""
        path = Path(path)
        if path in self._queued or not path.is_file():
            return
        self._queued.add(path)
        relative = path.relative_to(self.folder(epoch)).as_posix()
        self._queue.put(_File(epoch, path, relative))

    def add_folder(self, epoch: int) -> None:
        """Queue every file of `epoch`'s folder not queued yet (call once they are written)."""
        for path in sorted(p for p in self.folder(epoch).rglob("*") if p.is_file()):
            self.add(epoch, path)

    @contextmanager
    def stream_saves(self, engine: Any, epoch: int) -> Iterator[None]:
        """While DeepSpeed's `save_checkpoint` runs: queue each file its checkpoint engine
        finished writing, so the upload of one shard overlaps the writing of the next."""
        writer = getattr(engine, "checkpoint_engine", None)
        original = getattr(writer, "save", None)
        if original is None or type(writer).__name__ != "TorchCheckpointEngine":
            yield  # other engines may still be writing when save returns: `add_folder` later
            return

        def save(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            path = kwargs.get("path", args[1] if len(args) > 1 else None)
            if path is not None and Path(path).is_relative_to(self.folder(epoch)):
                self.add(epoch, Path(path))
            return result

        writer.save = save
        try:
            yield
        finally:
            try:
                del writer.save  # back to the class's method
            except AttributeError:
                writer.save = original

    def seal(self, epoch: int) -> None:
        """Queue the rest of `epoch`'s files, then this rank's digest file and done marker."""
        self.add_folder(epoch)
        self._queue.put(_Seal(epoch))

    def wait(self) -> None:
        """Block until everything queued is stored; raise the upload error if one occurred."""
        self._queue.join()
        if self._error is not None:
            raise self._error

    def wait_quietly(self) -> None:
        """`wait()` without raising: the error stays in `error`."""
        self._queue.join()

    @property
    def error(self) -> CheckpointUploadError | None:
        return self._error

    def close(self, *, remove_scratch: bool = True) -> None:
        """Stop the thread (what is still queued is dropped) and remove the scratch folder."""
        if self._thread.is_alive():
            self._error = self._error or CheckpointUploadError("checkpoint uploader closed")
            self._queue.put(None)
            self._thread.join(timeout=30)
        if remove_scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def local_bytes(self) -> int:
        """Bytes of checkpoint files on local scratch now."""
        total = 0
        for root, _, files in os.walk(self.scratch):
            for name in files:
                with contextlib.suppress(OSError):  # deleted meanwhile
                    total += os.path.getsize(os.path.join(root, name))
        return total

    # -- the upload thread --------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            task = self._queue.get()
            try:
                if task is None:
                    return
                if self._error is None:
                    self._do(task)
            finally:
                self._queue.task_done()

    def _do(self, task: _File | _Seal) -> None:
        if isinstance(task, _Seal):
            names = (layout.digest_file(self.rank), layout.done_marker(self.rank))
            label = " and ".join(str(self.folder(task.epoch) / name) for name in names)
        else:
            label = str(task.path)
        try:
            if isinstance(task, _Seal):
                self._seal(task.epoch)
            else:
                self._upload(task)
        except Exception as error:  # reported by wait() on the training thread
            self._error = CheckpointUploadError(
                f"checkpoint upload of {label} (epoch {task.epoch}, rank {self.rank}) failed: "
                + self._redact(_summary(error))
            )
            log.error("%s", self._error)

    def _upload(self, task: _File) -> None:
        size = task.path.stat().st_size
        digest = sha256_file(task.path)
        key = self.key(task.epoch, task.relative)
        self.backend.put_file(key, task.path)
        self._digests.setdefault(task.epoch, {})[task.relative] = {"sha256": digest, "size": size}
        task.path.unlink()  # the store has it: the local copy goes
        self._queued.discard(task.path)
        if self.on_uploaded is not None:
            self.on_uploaded(key, size)

    def _seal(self, epoch: int) -> None:
        files = self._digests.pop(epoch, {})
        document = json.dumps({"files": files}, indent=1, sort_keys=True).encode()
        self.backend.put_bytes(self.key(epoch, layout.digest_file(self.rank)), document)
        self.backend.put_bytes(self.key(epoch, layout.done_marker(self.rank)), b"ok\n")
        shutil.rmtree(self.folder(epoch), ignore_errors=True)  # empty folders left by the files
        self.sealed.append(epoch)

    def _redact(self, text: str) -> str:
        connection = getattr(self.backend, "connection", None)
        return connection.redact(text) if connection is not None else text


def _summary(error: BaseException) -> str:
    """The store's own message (it names the object, never credentials), else the type."""
    if isinstance(error, StoreError):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        return f"{type(error).__name__}: {error.strerror}"
    return type(error).__name__
