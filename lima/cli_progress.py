"""How a run looks while it runs: a live line per stage on a terminal, a line per event otherwise.

Both renderers turn a stage's ProgressSink calls (`completed`, `total`, `note`) into the same
words: the stage's own note (`step 40/96 loss 5.12 1,950 tok/s`), items per second where the unit
is items (generate, select, judge), and an ETA from the rate so far. Artifacts are shown by short
id (`train/3f2a9c1b04de`); `lima lineage` has the full URIs. A finished or cached stage's
warnings (curation shortfalls and contamination removals, a fallback checkpoint choice:
`lima.console.summary.stage_warnings`) are printed under its line in both modes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from lima.console.runs import short_id
from lima.console.summary import stage_warnings
from lima.runner import Events, StageRun

STATUS_STYLE = {"done": "green", "cached": "cyan", "failed": "red", "skipped": "yellow"}
ITEM_STAGES = {"select", "generate", "judge"}
"""Stages whose progress counts prompts or verdicts (their rate reads as items/s)."""
ETA_STAGES = ITEM_STAGES | {"train"}
"""Stages whose units take about the same time each, so that a rate predicts the rest
(curate counts sources of very different sizes: no ETA)."""


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=int(max(seconds, 0))))


class Rate:
    """Progress of one stage: the latest note, and rate/ETA from the counts seen so far."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.started = time.monotonic()
        self.first: tuple[float, float] | None = None  # (time, completed) of the first count
        self.completed: float | None = None
        self.total: float | None = None
        self.note = "starting"

    def update(self, completed: float | None, total: float | None, note: str | None) -> None:
        now = time.monotonic()
        if note is not None:
            self.note = note
        if total is not None:
            self.total = total
        if completed is not None:
            if self.first is None or completed < self.first[1]:
                self.first = (now, completed)
            self.completed = completed

    def text(self) -> str:
        parts = [self.note]
        if self.completed is None or self.first is None:
            return self.note
        seconds = time.monotonic() - self.first[0]
        done = self.completed - self.first[1]
        if self.stage in ITEM_STAGES and self.total:
            parts.append(f"{int(self.completed)}/{int(self.total)}")
        if seconds > 0 and done > 0:
            rate = done / seconds
            if self.stage in ITEM_STAGES:
                parts.append(f"{rate:.1f} items/s")
            if self.total and self.stage in ETA_STAGES:
                parts.append(f"ETA {_clock((self.total - self.completed) / rate)}")
        return ", ".join(parts)


def finished_text(result: StageRun) -> str:
    """`cache hit 0.0s curate/3f2a9c1b04de` or `failed 3.2s: <reason>` (no markup)."""
    if result.status == "failed":
        return f"failed {result.duration_s:.1f}s: {result.message}"
    if result.status == "skipped":
        return f"skipped ({result.message})"
    label = "cache hit" if result.status == "cached" else result.status
    return f"{label} {result.duration_s:.1f}s {short_id(result.stage, result.key)}"


class RichEvents(Events):
    """A live bar for the running stage; one line per finished stage stays on screen."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn(
                "[bold]{task.fields[stage]}[/bold]", table_column=Column(min_width=9, no_wrap=True)
            ),
            TimeElapsedColumn(),  # before the note: a long note must never hide the time
            BarColumn(bar_width=20),
            TextColumn(
                "{task.fields[note]}", table_column=Column(no_wrap=True, overflow="ellipsis")
            ),
            console=console,
            transient=False,
            # rich would route sys.stdout/sys.stderr writes onto the display; they belong in
            # the run's log file, where lima.console.capture sends them.
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.running: str | None = None

    def __enter__(self) -> RichEvents:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        with contextlib.suppress(OSError):  # the terminal may be gone (closed window, Ctrl-C)
            self.progress.stop()

    def stage_started(self, stage: Any, key: str):
        rate = Rate(stage.name)
        task = self.progress.add_task("", total=None, stage=stage.name, note="starting")
        self.tasks[stage.name] = task
        self.running = stage.name

        def sink(
            *, completed: float | None = None, total: float | None = None, note: str | None = None
        ) -> None:
            rate.update(completed, total, note)
            self.progress.update(task, completed=completed, total=total, note=escape(rate.text()))

        return sink

    def stage_finished(self, result: StageRun) -> None:
        style = STATUS_STYLE.get(result.status, "white")
        note = f"[{style}]{escape(finished_text(result))}[/{style}]"
        task = self.tasks.get(result.stage)
        if task is None:
            task = self.progress.add_task("", total=1, stage=result.stage, note=note)
        self.progress.update(task, total=1, completed=1, note=note)
        self.running = None
        for warning in stage_warnings(result.stage, result.summary):
            # above the live bars, where it stays: the library's warnings reach only the log
            self.progress.console.print(
                f"[yellow]{escape(warning)}[/yellow]", soft_wrap=True, highlight=False
            )


class PlainEvents(Events):
    """One full line per event, for logs and pipes: never cut, never rewritten.

    Progress lines are printed when the stage's note changes or every `every_s` seconds.
    """

    def __init__(self, out: TextIO, every_s: float = 10.0) -> None:
        self.out = out
        self.every_s = every_s
        self.running: str | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> PlainEvents:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.out.flush()

    def line(self, text: str) -> None:
        with self._lock:
            self.out.write(f"{time.strftime('%H:%M:%S')} {text}\n")
            self.out.flush()

    def stage_started(self, stage: Any, key: str):
        self.running = stage.name
        self.line(f"{stage.name}: started ({short_id(stage.name, key)})")
        rate = Rate(stage.name)
        last = {"note": "", "at": 0.0}

        def sink(
            *, completed: float | None = None, total: float | None = None, note: str | None = None
        ) -> None:
            rate.update(completed, total, note)
            now = time.monotonic()
            if rate.note != last["note"] or now - last["at"] >= self.every_s:
                last.update(note=rate.note, at=now)
                self.line(f"{stage.name}: {rate.text()}")

        return sink

    def stage_finished(self, result: StageRun) -> None:
        self.running = None
        self.line(f"{result.stage}: {finished_text(result)}")
        for warning in stage_warnings(result.stage, result.summary):
            self.line(warning)


def summary_table(results: Sequence[StageRun]) -> Table:
    table = Table(title="run summary")
    for column in ("stage", "status", "cache", "duration", "artifact"):
        table.add_column(column, no_wrap=True)
    for r in results:
        style = STATUS_STYLE.get(r.status, "white")
        table.add_row(
            r.stage,
            f"[{style}]{r.status}[/{style}]",
            "hit" if r.cache_hit else "miss",
            f"{r.duration_s:.1f}s",
            short_id(r.stage, r.key) if r.status in ("done", "cached") else "",
        )
    return table


def summary_lines(results: Sequence[StageRun]) -> list[str]:
    """The summary table as plain lines (no box, no width limit) for non-terminals."""
    lines = []
    for r in results:
        artifact = short_id(r.stage, r.key) if r.status in ("done", "cached") else ""
        cache = "hit" if r.cache_hit else "miss"
        lines.append(f"{r.stage:<9} {r.status:<8} {cache:<5} {r.duration_s:>7.1f}s  {artifact}")
    return lines
