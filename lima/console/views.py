"""Text renderings of what lima.console.runs reads (the `--output json` form is those dicts)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

STYLE = {
    "done": "green",
    "cached": "cyan",
    "failed": "red",
    "skipped": "yellow",
    "interrupted": "yellow",
    "succeeded": "green",
}


def _styled(status: str) -> str:
    style = STYLE.get(status, "white")
    return f"[{style}]{status}[/{style}]"


def runs_table(runs: list[dict[str, Any]]) -> Table:
    table = Table("run", "experiment", "status", "stages", "cache hits", "duration")
    for run in runs:
        stages = run["stages"]
        what = f"only {run['single_stage']}" if run.get("single_stage") else str(len(stages))
        table.add_row(
            run["run_id"],
            run["experiment"],
            _styled(run["status"]),
            what,
            f"{run['cache_hits']}/{len(stages)}",
            f"{run['duration_s']:.1f}s",
        )
    return table


def stages_table(run: dict[str, Any]) -> Table:
    table = Table(
        "stage", "status", "cache", "duration", "artifact", "error",
        title=f"{run['experiment']} run {run['run_id']} ({run['status']})",
    )  # fmt: skip
    for stage in run["stages"]:
        table.add_row(
            stage["stage"],
            _styled(stage["status"]),
            "hit" if stage["cache_hit"] else "-",
            f"{stage['duration_s'] or 0:.1f}s",
            stage["artifact"],
            escape(stage["error"]),
        )
    return table


def print_lineage(console: Console, view: dict[str, Any]) -> None:
    console.print(f"[bold]{view['experiment']}[/bold] run {view['run_id']} ({view['status']})")
    for stage in view["stages"]:
        if "digest" not in stage:
            reason = stage["error"] or "no artifact"
            console.print(f"  {stage['stage']}: {stage['status']} ({escape(reason)})")
            continue
        console.print(
            f"  [cyan]{stage['stage']}[/cyan] {stage['artifact']}  {stage['uri']}\n"
            f"      digest sha256:{stage['digest'][:16]}  {stage['objects']} objects, "
            f"{stage['size']:,} bytes, code v{stage['code_version']}",
            highlight=False,
        )
        for ref in stage["inputs"]:
            console.print(f"      <- {ref['stage']} sha256:{ref['digest'][:16]}", highlight=False)


def diff_table(first: str, second: str, rows: list[dict[str, Any]]) -> Table:
    table = Table("stage", first, second, "artifact", "changed in summary")
    for row in rows:
        changes = "; ".join(f"{k}: {a} -> {b}" for k, (a, b) in row["summary_changes"].items())
        table.add_row(
            row["stage"],
            f"{row['a']['status']} {row['a']['key'][:12]}",
            f"{row['b']['status']} {row['b']['key'][:12]}",
            "same" if row["same_artifact"] else "[yellow]differs[/yellow]",
            escape(changes[:200]),
        )
    return table
