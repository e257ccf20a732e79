"""Each stage's log, kept in the artifact store: it outlives the Ray cluster that ran the stage.

KubeRay deletes a finished RayJob's cluster after `ttlSecondsAfterFinished` (600 s by default),
and its pods' logs with it. So every stage run, local (`lima run`) or in a RayJob (`lima stage`),
copies what it printed and logged into `<prefix>/logs/<experiment>/<stage>/<time>.log` when it
ends, success or failure, before the process (and the cluster) goes. `lima logs EXPERIMENT
STAGE` prints the newest one.

Captured: every Python log record of the process, and what is written through
`sys.stdout`/`sys.stderr` while the stage runs. Output that native code writes straight to the
file descriptors, and what Ray workers print in their own processes, is not (it still reaches
the pod log while the pods exist). Secrets never reach a log line in the first place (see the
house rules); the log is capped at `MAX_BYTES`.
"""

from __future__ import annotations

import datetime
import logging
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from lima.errors import LimaError
from lima.store import ArtifactStore

log = logging.getLogger("lima.stage_logs")
MAX_BYTES = 50 * 2**20
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _CappedFile:
    """A log file that stops growing at MAX_BYTES (and says so once)."""

    def __init__(self, path: Path) -> None:
        self.handle = path.open("w", encoding="utf-8", errors="replace")
        self.written = 0
        self.lock = threading.Lock()

    def write(self, text: str) -> None:
        with self.lock:
            # Closed: a library kept a reference to the tee (Ray's colorama wraps sys.stdout
            # at import) and writes at exit; that text still reaches the original stream.
            if self.written >= MAX_BYTES or self.handle.closed:
                return
            self.written += len(text.encode("utf-8", "replace"))
            self.handle.write(text)
            if self.written >= MAX_BYTES:
                self.handle.write(f"\n[log truncated at {MAX_BYTES} bytes]\n")
            self.handle.flush()

    def close(self) -> None:
        with self.lock:
            self.handle.close()


class _Tee:
    """A text stream that writes to the original stream and the stage log."""

    def __init__(self, original: TextIO, copy: _CappedFile) -> None:
        self.original, self.copy = original, copy

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.original.write(text)

    def flush(self) -> None:
        self.original.flush()

    def __getattr__(self, name: str) -> object:  # isatty, fileno, encoding...
        return getattr(self.original, name)


def logs_prefix(store: ArtifactStore, experiment: str, stage: str) -> str:
    return store.key_of("logs", experiment, stage) + "/"


@contextmanager
def stage_log(store: ArtifactStore, experiment: str, stage: str) -> Iterator[None]:
    """Capture the stage's output while it runs; upload it to the store when it ends."""
    folder = Path(tempfile.mkdtemp(prefix=f"lima-log-{stage}-"))
    path = folder / "stage.log"
    copy = _CappedFile(path)
    handler = logging.StreamHandler(copy)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter(_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Tee(saved[0], copy), _Tee(saved[1], copy)  # type: ignore[assignment]
    try:
        yield
    except BaseException:
        copy.write(traceback.format_exc())
        raise
    finally:
        sys.stdout, sys.stderr = saved
        root.removeHandler(handler)
        copy.close()
        _upload(store, experiment, stage, path)
        path.unlink(missing_ok=True)
        folder.rmdir()


def _upload(store: ArtifactStore, experiment: str, stage: str, path: Path) -> None:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    key = store.key_of("logs", experiment, stage, f"{stamp}.log")
    try:
        store.backend.put_file(key, path)
    except Exception as error:  # a lost log must not fail the stage it describes
        log.warning("stage log of %s/%s not kept: %s", experiment, stage, error)


def stage_logs(store: ArtifactStore, experiment: str, stage: str) -> list[str]:
    """Keys of the stage's logs, oldest first."""
    return sorted(store.backend.list(logs_prefix(store, experiment, stage)))


def read_stage_log(store: ArtifactStore, experiment: str, stage: str, which: int = -1) -> str:
    """The text of one of the stage's logs (default: the newest)."""
    keys = stage_logs(store, experiment, stage)
    if not keys:
        raise LimaError(
            f"no log of stage {stage!r} of experiment {experiment!r} in {store.backend.uri('')}"
            " (has it run with this store?)"
        )
    data = store.backend.get_bytes(keys[which])
    return (data or b"").decode("utf-8", "replace")
