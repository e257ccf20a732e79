"""`lima`: validate, run and inspect LIMA experiments.

This module only registers the typer commands; their logic lives in lima/console/ (and in the
areas that own each command). Exit codes: 0 success, 1 a stage failed, 2 a usage error or
something not found (invalid spec, missing source, unknown run), 130 interrupted (Ctrl-C).
User mistakes print a clear message; tracebacks are kept for bugs (`lima -v` logs more).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from lima import __version__
from lima.console.help import PlainTyper
from lima.errors import LimaError, SpecError

app = PlainTyper(
    help="lima-run: the LIMA recipe (curate, fine-tune, generate, judge, report) as batch jobs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# A pipe or a file gets whole lines (no 80-column wrap); a terminal gets its width.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 1000)
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 1000)
ML_MODULES = ("ray", "torch", "deepspeed", "transformers")
"""What running a stage needs beyond the core: the `ml` extra (pyproject.toml)."""
NEEDS_ML = "running stages needs the ML extra: pip install 'lima-run[ml]'"


def _require_ml() -> None:
    """Exit 2 with one line, before anything starts, where the `ml` extra is not installed
    (a core-only install: the operator image, `pip install lima-run`)."""
    import importlib.util

    for name in ML_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ImportError:
            found = False
        if not found:
            err.print(NEEDS_ML, markup=False, highlight=False)
            raise typer.Exit(2)


ExperimentArg = Annotated[
    str, typer.Argument(help="Experiment YAML file (or s3:// URI).", metavar="FILE")
]
NameArg = Annotated[
    str | None,
    typer.Argument(
        help="Experiment name or file (default: with --run, any).", metavar="EXPERIMENT"
    ),
]
RunOpt = Annotated[
    str | None, typer.Option("--run", help="A run id from `lima status` (or its prefix).")
]


class Output(StrEnum):
    text = "text"
    json = "json"


OutputOpt = Annotated[
    Output, typer.Option("--output", "-o", help="text or json.", metavar="text|json")
]


def _version(value: bool) -> None:
    if value:
        console.print(f"lima-run {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _load(file: str):
    from lima.spec.load import load_experiment

    return load_experiment(file)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _preflight(experiment, settings, *, offline: bool, local_run: bool) -> None:
    """Print warnings; raise SpecError (exit 2) listing every blocking problem."""
    from lima.console.preflight import preflight

    findings = preflight(experiment, settings, offline=offline, local_run=local_run)
    for finding in findings:
        if not finding.error:
            err.print(f"[yellow]warning[/yellow] {escape(str(finding))}", highlight=False)
    errors = [str(f) for f in findings if f.error]
    if errors:
        raise SpecError(f"{experiment.metadata.name} (preflight)", errors)


@app.command()
def validate(
    file: ExperimentArg,
    offline: Annotated[
        bool, typer.Option("--offline", help="Skip checks that need the network (S3, hub, judge).")
    ] = False,
) -> None:
    """Check an Experiment file: the spec, then its sources, models, judge and resources."""
    from lima.console.workdir import cli_settings

    settings = cli_settings(file)
    experiment = _load(file)
    _preflight(experiment, settings, offline=offline, local_run=False)
    spec = experiment.spec
    quotas = sum(s.quota for s in spec.data.sources)
    console.print(
        f"[green]valid[/green] {file}: Experiment [bold]{experiment.metadata.name}[/bold], "
        f"{len(spec.data.sources)} sources (quota {quotas}), base model {spec.model.base}, "
        f"{spec.train.epochs} epochs, ZeRO-{spec.train.zero_stage}, "
        f"judge {spec.judge.backend.value}",
        soft_wrap=True,
    )
    from lima.train.recipe import describe_recipe

    console.print(f"  train: {describe_recipe(spec.model, spec.train)}", soft_wrap=True)
    if spec.sweep is not None:
        from lima.sweep import variants

        for _, child in variants(experiment):  # each variant's sources, model and resources
            _preflight(child, settings, offline=offline, local_run=False)
        names = ", ".join(v.name for v in spec.sweep.variants)
        console.print(
            f"  sweep: {len(spec.sweep.variants)} variants ({names}), "
            f"baseline {spec.sweep.baseline_name}",
            soft_wrap=True,
            highlight=False,
        )


@app.command()
def run(
    file: ExperimentArg,
    force: Annotated[bool, typer.Option("--force", help="Recompute every stage.")] = False,
    force_stage: Annotated[
        list[str] | None,
        typer.Option("--force-stage", help="Recompute this stage (repeatable).", metavar="STAGE"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show which stages would run, and why.")
    ] = False,
    verify: Annotated[
        bool, typer.Option("--verify", help="Re-hash cached artifacts before reusing them.")
    ] = False,
) -> None:
    """Run every stage in order on a local Ray (started on demand); cached stages are skipped."""
    if dry_run:
        plan(file, force=force, force_stage=force_stage)
        return
    _require_ml()
    from lima.cli_progress import PlainEvents, RichEvents, summary_lines, summary_table
    from lima.console import run as running
    from lima.console.summary import outcome
    from lima.console.workdir import cli_settings
    from lima.runner import RunOptions, run_experiment
    from lima.store import open_store

    settings = cli_settings(file)
    experiment = _load(file)
    name = experiment.metadata.name
    console.print(f"[bold]{name}[/bold]  work dir {settings.work_dir}", highlight=False)
    console.print(f"  {settings.describe()}", highlight=False)
    _preflight(experiment, settings, offline=False, local_run=True)
    log_path = running.log_path_for(settings, experiment)
    console.print(f"  library output: {log_path}", highlight=False)
    interactive = sys.stdout.isatty()

    def events(display: Console, terminal: Any):
        return RichEvents(display) if interactive else PlainEvents(terminal)

    def start(recorder):
        options = RunOptions(force=force, force_stages=force_stage or [], verify=verify)
        return run_experiment(experiment, settings, options=options, events=recorder)

    if experiment.spec.sweep is not None:
        _run_sweep(experiment, settings, log_path, events, force, force_stage, verify)
        return
    results = running.run_with_display(
        experiment, settings, start, log_path, events, running.terminal_width()
    )
    store = open_store(settings, experiment.spec.storage)
    records = store.runs(name)
    result = outcome(results, store, records[-1]["run_id"] if records else None)
    if interactive:
        console.print(summary_table(results))
    else:
        for line in summary_lines(results):
            console.print(line, markup=False, highlight=False)
    for line in result.lines():
        console.print(line, markup=False, highlight=False)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        for stage in failed:
            err.print(f"[red]stage {stage.stage} failed:[/red]", escape(stage.message))
        err.print(f"details: {log_path}", highlight=False)
        raise typer.Exit(1)


def _run_sweep(experiment, settings, log_path, events, force, force_stage, verify) -> None:
    """`lima run` on an Experiment with `spec.sweep`: every variant, then the comparison."""
    from lima.console import run as running
    from lima.report import locate
    from lima.runner import RunOptions
    from lima.store import open_store
    from lima.sweep import run_sweep, summary_lines, variants

    for _, child in variants(experiment):
        _preflight(child, settings, offline=False, local_run=True)

    def start_sweep(recorder):
        options = RunOptions(force=force, force_stages=force_stage or [], verify=verify)
        return run_sweep(experiment, settings, options=options, events=recorder)

    result = running.run_with_display(
        experiment, settings, start_sweep, log_path, events, running.terminal_width()
    )
    for line in summary_lines(result):
        console.print(line, markup=False, highlight=False)
    if not result.ok:
        for run in result.variants:
            for failed in (s for s in run.stages if s.status == "failed"):
                err.print(
                    f"[red]{run.variant.name}: stage {failed.stage} failed:[/red]",
                    escape(failed.message),
                )
        err.print(f"details: {log_path}", highlight=False)
        raise typer.Exit(1)
    store = open_store(settings, experiment.spec.storage)
    console.print(f"report: {locate(store, experiment.metadata.name)}", highlight=False)


@app.command()
def stage(
    name: Annotated[
        str, typer.Argument(help="Stage to run (curate, train, ...).", metavar="STAGE")
    ],
    file: Annotated[
        str | None, typer.Argument(help="Experiment file or s3:// URI.", metavar="FILE")
    ] = None,
    experiment_ref: Annotated[
        str | None,
        typer.Option("--experiment", "-e", help="Same as FILE (RayJobs use it).", metavar="FILE"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Recompute despite a cache hit.")] = False,
) -> None:
    """Run one stage whose inputs are already in the artifact store (what each RayJob runs)."""
    from lima.console.runs import short_id
    from lima.console.workdir import cli_settings
    from lima.runner import run_single_stage

    if (file is None) == (experiment_ref is None):
        raise LimaError("name the Experiment once: `lima stage STAGE FILE` (or --experiment FILE)")
    _require_ml()
    location = str(file or experiment_ref).removeprefix("file://")  # the operator's snapshot URI
    settings = cli_settings(location)
    experiment = _load(location)
    if name == "compare":  # the last RayJob of a sweep on a cluster
        from lima.sweep import compare_finished

        manifest = compare_finished(experiment, settings)
        console.print(f"compare: {short_id('compare', manifest.key)}")
        console.print(f"  {manifest.uri}", highlight=False)
        return
    result = run_single_stage(experiment, settings, name, force=force)
    hit = "cache hit" if result.cache_hit else f"done in {result.duration_s:.1f}s"
    console.print(f"{result.stage}: {hit} -> {short_id(result.stage, result.key)}")
    console.print(f"  {result.uri}", highlight=False)


def _store_for(experiment: str | None):
    """The store and experiment name for a name or a file (a file also gives its storage)."""
    from lima.console.workdir import cli_settings
    from lima.spec import StorageSpec
    from lima.store import open_store

    settings = cli_settings(experiment)
    if experiment and (experiment.endswith((".yaml", ".yml")) or experiment.startswith("s3://")):
        loaded = _load(experiment)
        return open_store(settings, loaded.spec.storage), loaded.metadata.name, settings
    return open_store(settings, StorageSpec()), experiment, settings


def _pick_run(store, name: str | None, run_id: str | None) -> dict[str, Any]:
    from lima.console.runs import find_run, latest_run

    if run_id:
        return find_run(store, run_id, name)
    if not name:
        raise LimaError("name an experiment, or a run with --run RUN_ID")
    return latest_run(store, name)


@app.command()
def status(
    target: Annotated[
        str | None,
        typer.Argument(
            help="Experiment name or file, or a run id (default: every run).",
            metavar="EXPERIMENT|RUN",
        ),
    ] = None,
    output: OutputOpt = Output.text,
) -> None:
    """Runs with per-stage status, duration, cache hits and errors."""
    from lima.console.runs import find_run, run_view
    from lima.console.views import runs_table, stages_table

    store, name, settings = _store_for(target)
    where = settings.describe() if settings.s3_endpoint else settings.work_dir
    records = store.runs(name) if name else store.runs()
    if name and not records:  # not an experiment with runs: a run id, or nothing (exit 2)
        try:
            records = [find_run(store, name)]
        except LimaError:
            raise LimaError(f"no experiment or run named {name!r} in {where}") from None
    views = [run_view(r) for r in records]
    if output is Output.json:
        _print_json({"runs": views})
        return
    if not views:
        console.print(f"no runs recorded in {where}", highlight=False)
        return
    if target is None:
        console.print(runs_table(views))
        return
    if len(views) > 1:
        console.print(runs_table(views))
    console.print(stages_table(views[-1]))
    from lima.console.summary import finding_lines

    for line in finding_lines(views[-1]["outcome"]):  # the selection fallback, a proxy judge
        console.print(line, markup=False, highlight=False, soft_wrap=True)


@app.command()
def lineage(
    experiment: NameArg = None,
    run_id: RunOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """The chain of artifacts of a run (default: the latest): ids, URIs, digests, inputs."""
    from lima.console.runs import lineage_view
    from lima.console.views import print_lineage

    store, name, _ = _store_for(experiment)
    view = lineage_view(store, _pick_run(store, name, run_id))
    if output is Output.json:
        _print_json(view)
        return
    print_lineage(console, view)


@app.command()
def report(
    experiment: NameArg = None,
    run_id: RunOpt = None,
    open_page: Annotated[
        bool, typer.Option("--open", help="Open the page in the default browser.")
    ] = False,
    output: OutputOpt = Output.text,
) -> None:
    """The path of a run's HTML report (default: the newest run that made one)."""
    from lima.report import locate_in_run

    store, name, settings = _store_for(experiment)
    record = _pick_run(store, name, run_id)
    name = name or record["experiment"]
    dest = settings.work_dir / "reports" / name
    where = locate_in_run(store, record, dest)
    served = record
    if where is None and run_id:
        raise LimaError(
            f"run {record['run_id']} produced no report (`lima status {record['run_id']}`)"
        )
    if where is None:  # the latest run has none: the newest older run that does
        for older in reversed(store.runs(name)):
            where = locate_in_run(store, older, dest)
            if where is not None:
                served = older
                break
    if where is None:
        raise LimaError(f"no report for experiment {name!r} yet; `lima run` it first")
    older_than_latest = served is not record
    if output is Output.json:
        _print_json(
            {
                "report": where,
                "run_id": served["run_id"],
                "latest_run": record["run_id"],
                "from_older_run": older_than_latest,
            }
        )
    else:
        if older_than_latest:
            err.print(
                f"[yellow]note[/yellow] the latest run {record['run_id']} made no report; "
                f"this one is from run {served['run_id']}",
                highlight=False,
            )
        console.print(where, soft_wrap=True, highlight=False, markup=False)
    if open_page:
        import webbrowser

        target = where if "://" in where else Path(where).resolve().as_uri()
        if not webbrowser.open(target):
            err.print("no browser found; open the path above", highlight=False)


@app.command()
def plan(
    file: ExperimentArg,
    force: Annotated[bool, typer.Option("--force", help="As if every stage were forced.")] = False,
    force_stage: Annotated[
        list[str] | None,
        typer.Option("--force-stage", help="As if this stage were forced.", metavar="STAGE"),
    ] = None,
    output: OutputOpt = Output.text,
) -> None:
    """Which stages `lima run` would compute and which it would reuse, and why."""
    from lima.console.workdir import cli_settings
    from lima.store import open_store
    from lima.store.plan import plan_lines

    settings = cli_settings(file)
    experiment = _load(file)
    store = open_store(settings, experiment.spec.storage)
    sweep = experiment.spec.sweep
    if sweep is not None:  # every variant's stages, then the comparison
        from lima.sweep import plan_lines as sweep_plan_lines

        lines = sweep_plan_lines(experiment, store, force_stages=force_stage or [], force_all=force)
    else:
        lines = plan_lines(experiment, store, force_stages=force_stage or [], force_all=force)
    if output is Output.json:
        _print_json({"experiment": experiment.metadata.name, "stages": [asdict(x) for x in lines]})
        return
    if sweep is not None:
        names = ", ".join(v.name for v in sweep.variants)
        head = f"sweep {experiment.metadata.name}: {len(sweep.variants)} variants ({names})"
        console.print(f"{head}, then the comparison", markup=False, highlight=False)
    width = max([9, *(len(line.label) for line in lines)])
    for line in lines:
        console.print(line.text(width), markup=False, highlight=False)


@app.command()
def verify(
    experiment: Annotated[
        str, typer.Argument(help="Experiment name or file.", metavar="EXPERIMENT")
    ],
    run_id: RunOpt = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Check presence and sizes only (no hashing).")
    ] = False,
) -> None:
    """Re-hash every artifact of a run (default: the latest) against its manifest."""
    from lima.errors import IntegrityError
    from lima.store.verify import verify_experiment

    store, name, _ = _store_for(experiment)
    lines, intact = verify_experiment(store, name or experiment, run_id=run_id, deep=not quick)
    for line in lines:
        console.print(line, markup=False, highlight=False)
    if not intact:
        raise IntegrityError(f"{name}: damaged artifacts (see above); `lima run` recomputes them")


@app.command()
def gc(
    experiment: Annotated[
        str | None, typer.Argument(help="A file, for its storage prefix.", metavar="FILE")
    ] = None,
    apply: Annotated[bool, typer.Option("--apply", help="Delete (default: only list).")] = False,
    min_age_h: Annotated[
        float, typer.Option("--min-age-h", help="Only garbage older than this many hours.")
    ] = 6.0,
) -> None:
    """List (or with --apply remove) orphan attempts, unfinished writes, uploads and
    abandoned training run folders."""
    from lima.store.gc import collect

    store, _, _ = _store_for(experiment)
    garbage = collect(store, min_age_s=min_age_h * 3600, apply=apply)
    for line in garbage.lines():
        console.print(line, markup=False, highlight=False)
    verb = "freed" if apply else "reclaimable"
    console.print(f"{garbage.bytes:,} bytes {verb}", highlight=False)


@app.command()
def diff(
    first: Annotated[str, typer.Argument(help="A run id (or prefix).", metavar="RUN")],
    second: Annotated[str, typer.Argument(help="Another run id (or prefix).", metavar="RUN")],
    output: OutputOpt = Output.text,
) -> None:
    """Compare two runs stage by stage: keys, statuses and changed summary numbers."""
    from lima.console.runs import diff_runs, find_run
    from lima.console.views import diff_table

    store, _, _ = _store_for(None)
    a, b = find_run(store, first), find_run(store, second)
    rows = diff_runs(a, b)
    if output is Output.json:
        _print_json({"a": a["run_id"], "b": b["run_id"], "stages": rows})
        return
    console.print(diff_table(a["run_id"], b["run_id"], rows))


@app.command()
def init(
    folder: Annotated[
        Path, typer.Argument(help="Folder to create (default: here).", metavar="FOLDER")
    ] = Path("."),
    name: Annotated[
        str | None, typer.Option("--name", help="metadata.name (default: the folder's name).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Create an Experiment file and a tiny data folder to start from."""
    from lima.console.scaffold import scaffold

    written = scaffold(folder, name, force=force)
    for path in written:
        console.print(f"wrote {path}", highlight=False)
    console.print(f"next: lima run {written[0]}", highlight=False)


@app.command()
def crd(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here.", metavar="PATH")
    ] = None,
) -> None:
    """Print (or write) the Experiment CRD generated from the spec models."""
    from lima.k8s.crd import render_crd_yaml

    _emit(render_crd_yaml(), output)


@app.command()
def docs(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here.", metavar="PATH")
    ] = None,
) -> None:
    """Print (or write) the Experiment reference generated from the spec models."""
    from lima.spec.reference import render_reference

    _emit(render_reference(), output)


@app.command()
def logs(
    experiment: Annotated[
        str, typer.Argument(help="Experiment name or file.", metavar="EXPERIMENT")
    ],
    stage_name: Annotated[str, typer.Argument(help="Stage (curate, train, ...).", metavar="STAGE")],
    list_all: Annotated[
        bool, typer.Option("--list", help="List the stage's kept logs, oldest first.")
    ] = False,
) -> None:
    """Print a stage's newest log from the artifact store (kept after its Ray cluster is gone)."""
    from lima.stage_logs import read_stage_log, stage_logs

    store, name, _ = _store_for(experiment)
    if list_all:
        for key in stage_logs(store, name, stage_name):
            console.print(store.backend.uri(key), highlight=False)
        return
    sys.stdout.write(read_stage_log(store, name, stage_name))


data_app = PlainTyper(help="Copy data into the artifact store's S3.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("push")
def data_push(
    source: Annotated[Path, typer.Argument(help="A local file or folder.", metavar="SRC")],
    destination: Annotated[
        str, typer.Argument(help="s3://BUCKET/PREFIX (LIMA_S3_* settings).", metavar="DEST")
    ],
) -> None:
    """Copy SRC to S3 for Experiments on a cluster (skips files already there, unchanged)."""
    from lima.console.workdir import cli_settings
    from lima.transfer import push

    report = push(source, destination, cli_settings(None))
    console.print(
        f"{len(report.uploaded)} uploaded, {len(report.unchanged)} unchanged -> {destination}",
        highlight=False,
    )


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    console.print(f"wrote {output}")


def main() -> None:
    from lima.console.run import InterruptedRunError

    try:
        app(prog_name="lima")  # also under `python -m lima.cli`: completion is for `lima`
    except SpecError as error:
        err.print(f"[red]invalid[/red] {error.source}: {len(error.problems)} problem(s)")
        for problem in error.problems:
            err.print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except LimaError as error:
        err.print("[red]error:[/red]", escape(str(error)), highlight=False)
        sys.exit(error.exit_code)
    except InterruptedRunError as stop:
        try:
            err.print(
                f"interrupted: run {stop.run_id} recorded, workers stopped; log {stop.log_path}",
                highlight=False,
            )
            sys.stdout.flush()
            sys.stderr.flush()
        finally:  # even if the terminal is gone: never wait for the runner thread in Ray
            from lima.runtime import kill_frozen

            kill_frozen(stop.frozen)  # last: Ray ends this process (code 1) once its raylet dies
            os._exit(130)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except ModuleNotFoundError as error:  # another command reaching for the ML stack
        if (error.name or "").split(".")[0] not in ML_MODULES:
            raise
        err.print(NEEDS_ML, markup=False, highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
