"""`lima run` around the runner: preflight, log capture, live display, Ctrl-C, closing summary.

The runner works in a background thread so that the main thread owns SIGINT. Ray Train installs
its own SIGINT handler when `fit()` runs on the main thread (a "graceful" abort that takes ~10 s
and stays installed afterwards); off the main thread it does not, and Ctrl-C reaches us as a
KeyboardInterrupt at once: we record the run as interrupted, stop Ray's workers, and exit 130.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from lima.console.capture import output_to_log
from lima.runner import Events, StageRun
from lima.runtime import adopt_orphans, freeze_ray, shutdown_ray
from lima.settings import Settings
from lima.spec import Experiment
from lima.store import now_iso

SHUTDOWN_S = 4.0
"""How long stopping Ray's workers may take after Ctrl-C (the promise is 5 s in all)."""


class InterruptedRunError(Exception):
    """Ctrl-C during a run; carries the run id it was recorded under, and the processes the run
    started, frozen: whoever catches this kills them (`lima.runtime.kill_frozen`) and exits."""

    def __init__(self, run_id: str, log_path: Path, frozen: list[Any] | None = None) -> None:
        super().__init__(run_id)
        self.run_id, self.log_path, self.frozen = run_id, log_path, frozen or []


@dataclass
class Recorder(Events):
    """Passes events on to the display and remembers them, for the record of an interrupted run."""

    inner: Events
    started_at: str = field(default_factory=now_iso)
    finished: list[StageRun] = field(default_factory=list)
    running: tuple[str, str, float] | None = None  # (stage, key, started)
    stopped: threading.Event = field(default_factory=threading.Event)

    def cancelled(self) -> bool:
        return self.stopped.is_set()

    def stage_started(self, stage: Any, key: str):
        self.running = (stage.name, key, time.monotonic())
        return self.inner.stage_started(stage, key)

    def stage_finished(self, result: StageRun) -> None:
        if self.stopped.is_set():  # the display is closed and the run already recorded
            return
        self.running = None
        self.finished.append(result)
        self.inner.stage_finished(result)


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def log_path_for(settings: Settings, experiment: Experiment) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return settings.work_dir / "logs" / f"{experiment.metadata.name}-{stamp}.log"


def run_with_display(
    experiment: Experiment,
    settings: Settings,
    start: Callable[[Events], list[StageRun]],
    log_path: Path,
    make_events: Callable[[Console, Any], Events],
    width: int,
) -> list[StageRun]:
    """Run `start(events)` with library output in `log_path` and the display on the terminal."""
    with output_to_log(log_path) as terminal:
        console = Console(file=terminal, width=width, soft_wrap=True)
        events = make_events(console, terminal)
        recorder = Recorder(events)
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["results"] = start(recorder)
            except BaseException as error:  # handed to the main thread, re-raised there
                outcome["error"] = error

        worker = threading.Thread(target=work, name="lima-run", daemon=True)
        adopt_orphans()
        with events:  # type: ignore[attr-defined]
            worker.start()
            try:
                while worker.is_alive():
                    worker.join(0.2)
            except KeyboardInterrupt:
                recorder.stopped.set()  # first: the runner thread must not add a record of its own
                # Frozen at once (training stops using the CPU), killed by the CLI as it exits.
                frozen = freeze_ray(time.monotonic() + SHUTDOWN_S)
                run_id = _record_interrupted(experiment, settings, recorder)
                raise InterruptedRunError(run_id, log_path, frozen) from None
        # here, so that Ray's shutdown messages also land in the log
        shutdown_ray(time.monotonic() + SHUTDOWN_S)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["results"]


def _record_interrupted(experiment: Experiment, settings: Settings, recorder: Recorder) -> str:
    """Save what ran before Ctrl-C as a run record (`lima status` shows it as interrupted)."""
    from lima.store import open_store

    stages = [asdict(r) for r in recorder.finished]
    if recorder.running is not None:
        name, key, started = recorder.running
        interrupted = StageRun(
            name,
            key,
            "interrupted",
            duration_s=round(time.monotonic() - started, 3),
            message="interrupted by the user (Ctrl-C)",
        )
        stages.append(asdict(interrupted))
    run_id = new_run_id()
    record = {
        "run_id": run_id,
        "experiment": experiment.metadata.name,
        "started_at": recorder.started_at,
        "ended_at": now_iso(),
        "interrupted": True,
        "stages": stages,
    }
    try:
        open_store(settings, experiment.spec.storage).record_run(
            experiment.metadata.name, run_id, record
        )
    except Exception as error:  # the store may be what hung; the exit must not wait for it
        print(f"run record not saved: {type(error).__name__}", file=sys.stderr)
    return run_id


def terminal_width() -> int:
    """The terminal's width, read before stdout is redirected into the log."""
    if "COLUMNS" in os.environ or sys.stdout.isatty():
        return shutil.get_terminal_size((120, 24)).columns
    return 1000  # a pipe or file: never wrap or cut a line
