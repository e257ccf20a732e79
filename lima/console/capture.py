"""Library noise goes to the run's log file, not into the live display.

Ray's C++ core worker writes straight to file descriptor 2 (`core_worker.cc:... max_restarts`),
its Python side logs warnings at start-up, and HF/DeepSpeed print progress bars: none of that
goes through `sys.stderr` alone, and any of it tears rich's live display apart. So for the
duration of a run, descriptors 1 and 2 point at the log file, and the display writes to a
duplicate of the terminal that was there before.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

LOG_MODE = 0o644


@contextmanager
def output_to_log(log_path: Path) -> Iterator[TextIO]:
    """Redirect fds 1 and 2 into `log_path`; yield a text stream to the original stdout."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, LOG_MODE)
    terminal = os.fdopen(os.dup(saved_out), "w", buffering=1, encoding="utf-8", errors="replace")
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    try:
        yield terminal
    finally:
        for stream in (sys.stdout, sys.stderr, terminal):
            with contextlib.suppress(OSError, ValueError):  # closed: nothing left to flush
                stream.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        with contextlib.suppress(OSError):
            terminal.close()
