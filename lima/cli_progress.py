"""Rich rendering of a run: one progress line per stage, then a summary table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from lima.runner import Events, StageResult
from lima.stages import Stage

STATUS_STYLE = {"done": "green", "cached": "cyan", "failed": "red", "skipped": "yellow"}


class RichEvents(Events):
    """Draws a live bar for the running stage and leaves one line per finished stage."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn(
                "[bold]{task.fields[stage]}[/bold]", table_column=Column(min_width=9, no_wrap=True)
            ),
            BarColumn(bar_width=28),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichEvents:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def stage_started(self, stage: Stage, key: str):
        task = self.progress.add_task("", total=None, stage=stage.name, note="running")
        self.tasks[stage.name] = task

        def sink(
            *, completed: float | None = None, total: float | None = None, note: str | None = None
        ) -> None:
            fields: dict[str, Any] = {}
            if note is not None:
                fields["note"] = note
            self.progress.update(task, completed=completed, total=total, **fields)

        return sink

    def stage_finished(self, result: StageResult) -> None:
        style = STATUS_STYLE.get(result.status, "white")
        label = "cache hit" if result.cache_hit else result.status
        note = f"[{style}]{label}[/{style}] {result.duration_s:.1f}s {result.uri}"
        if result.status == "failed":
            note = f"[red]failed[/red] {result.duration_s:.1f}s"
        task = self.tasks.get(result.stage)
        if task is None:
            task = self.progress.add_task("", total=1, stage=result.stage, note=note)
        self.progress.update(task, total=1, completed=1, note=note)


def summary_table(results: Sequence[StageResult]) -> Table:
    table = Table(title="run summary")
    for column in ("stage", "status", "cache", "duration"):
        table.add_column(column, no_wrap=True)
    table.add_column("artifact", overflow="fold")
    for r in results:
        style = STATUS_STYLE.get(r.status, "white")
        table.add_row(
            r.stage,
            f"[{style}]{r.status}[/{style}]",
            "hit" if r.cache_hit else "miss",
            f"{r.duration_s:.1f}s",
            r.uri or r.message[:80],
        )
    hits = sum(r.cache_hit for r in results)
    table.caption = f"{hits}/{len(results)} cache hits, {sum(r.duration_s for r in results):.1f}s"
    return table
