"""`lima`: validate, run and inspect LIMA experiments.

User mistakes (invalid spec, missing source, unreachable store) print a clear message and exit 2
(1 for a failed stage); tracebacks are kept for bugs, or shown with `--debug`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lima.errors import LimaError, SpecError
from lima.settings import Settings, load_settings

app = typer.Typer(
    help="lima-run: the LIMA recipe (curate, fine-tune, generate, judge, report) as batch jobs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(soft_wrap=True)  # long URIs stay copyable on one line
err = Console(stderr=True, soft_wrap=True)

ExperimentArg = Annotated[str, typer.Argument(help="Experiment YAML file (or s3:// URI).")]


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _load(file: str):
    from lima.spec.load import load_experiment

    return load_experiment(file)


@app.command()
def validate(file: ExperimentArg) -> None:
    """Check an Experiment file; list every problem as `path: rule (got value)`."""
    experiment = _load(file)
    spec = experiment.spec
    quotas = sum(s.quota for s in spec.data.sources)
    console.print(
        f"[green]valid[/green] {file}: Experiment [bold]{experiment.metadata.name}[/bold], "
        f"{len(spec.data.sources)} sources (quota {quotas}), base model {spec.model.base}, "
        f"{spec.train.epochs} epochs, ZeRO-{spec.train.zero_stage}, "
        f"judge {spec.judge.backend.value}",
        soft_wrap=True,
    )


@app.command()
def run(
    file: ExperimentArg,
    force: Annotated[bool, typer.Option("--force", help="Recompute every stage.")] = False,
    force_stage: Annotated[
        list[str] | None, typer.Option("--force-stage", help="Recompute this stage (repeatable).")
    ] = None,
) -> None:
    """Run every stage in order on a local Ray (started on demand); cached stages are skipped."""
    from lima.cli_progress import RichEvents, summary_table
    from lima.runner import RunOptions, run_experiment

    experiment = _load(file)
    settings = load_settings()
    console.print(f"[bold]{experiment.metadata.name}[/bold]  ({settings.describe()})")
    with RichEvents(console) as events:
        results = run_experiment(
            experiment,
            settings,
            options=RunOptions(force=force, force_stages=force_stage or []),
            events=events,
        )
    console.print(summary_table(results))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        for result in failed:
            err.print(f"[red]stage {result.stage} failed:[/red]", escape(result.message))
        raise typer.Exit(1)


@app.command()
def stage(
    name: Annotated[str, typer.Argument(help="Stage to run (curate, train, ...).")],
    experiment_ref: Annotated[
        str, typer.Option("--experiment", "-e", help="Experiment YAML file or s3:// URI.")
    ],
    force: Annotated[bool, typer.Option("--force", help="Recompute despite a cache hit.")] = False,
) -> None:
    """Run one stage whose inputs are already in the artifact store (what each RayJob runs)."""
    from lima.runner import run_single_stage

    experiment = _load(experiment_ref)
    result = run_single_stage(experiment, load_settings(), name, force=force)
    hit = "cache hit" if result.cache_hit else f"done in {result.duration_s:.1f}s"
    console.print(f"{result.stage}: {hit} -> {result.uri}")


@app.command()
def status(
    experiment: Annotated[
        str | None, typer.Argument(help="Experiment name or file (default: all).")
    ] = None,
) -> None:
    """List runs with their stages, cache hits and durations."""
    store, name = _store_for(experiment)
    records = store.runs(name)
    if not records:
        console.print("no runs recorded" + (f" for {name}" if name else ""))
        return
    table = Table("run", "experiment", "ran", "cached", "failed", "duration")
    for record in records:
        stages = record.get("stages", [])
        count = {k: sum(s["status"] == k for s in stages) for k in ("done", "cached", "failed")}
        table.add_row(
            record["run_id"],
            record["experiment"],
            str(count["done"]),
            f"{count['cached']}/{len(stages)}",
            f"[red]{count['failed']}[/red]" if count["failed"] else "0",
            f"{sum(s.get('duration_s', 0) for s in stages):.1f}s",
        )
    console.print(table)


@app.command()
def lineage(
    experiment: Annotated[str, typer.Argument(help="Experiment name or file.")],
) -> None:
    """Print the chain of artifacts of the latest run: URIs, digests, inputs."""
    store, name = _store_for(experiment)
    records = store.runs(name)
    if not records:
        raise LimaError(f"no runs recorded for experiment {name!r}")
    latest = records[-1]
    console.print(f"[bold]{name}[/bold] run {latest['run_id']}")
    for entry in latest["stages"]:
        if not entry.get("key"):
            console.print(f"  {entry['stage']}: {entry['status']} (no artifact)")
            continue
        manifest = store.manifest(entry["stage"], entry["key"])
        if manifest is None:
            console.print(f"  {entry['stage']}: {entry['status']} (no manifest)")
            continue
        console.print(
            f"  [cyan]{manifest.stage}[/cyan] {manifest.uri}\n"
            f"      digest sha256:{manifest.digest[:16]}  {len(manifest.objects)} objects, "
            f"{manifest.size:,} bytes, code v{manifest.code_version}"
        )
        for ref in manifest.inputs:
            console.print(f"      <- {ref.stage} sha256:{ref.digest[:16]}")


@app.command()
def report(
    experiment: Annotated[str, typer.Argument(help="Experiment name or file.")],
) -> None:
    """Fetch the latest report artifact and print the path of its HTML page."""
    from lima.report import locate

    store, name = _store_for(experiment)
    path = locate(store, name, load_settings().work_dir / "reports" / name)
    console.print(str(path), soft_wrap=True, highlight=False)


@app.command()
def crd(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here.")] = None,
) -> None:
    """Print (or write) the Experiment CRD generated from the spec models."""
    from lima.crd import render_crd_yaml

    _emit(render_crd_yaml(), output)


@app.command()
def docs(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here.")] = None,
) -> None:
    """Print (or write) the Experiment reference generated from the spec models."""
    from lima.docs import render_reference

    _emit(render_reference(), output)


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    console.print(f"wrote {output}")


def _store_for(experiment: str | None):
    """The store and experiment name for a name or a file (a file also gives its storage)."""
    from lima.spec import StorageSpec
    from lima.store import open_store

    settings: Settings = load_settings()
    if experiment and (experiment.endswith((".yaml", ".yml")) or experiment.startswith("s3://")):
        loaded = _load(experiment)
        return open_store(settings, loaded.spec.storage), loaded.metadata.name
    return open_store(settings, StorageSpec()), experiment


def main() -> None:
    try:
        app()
    except SpecError as error:
        err.print(f"[red]invalid[/red] {error.source}: {len(error.problems)} problem(s)")
        for problem in error.problems:
            err.print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except LimaError as error:
        err.print("[red]error:[/red]", escape(str(error)), highlight=False)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
