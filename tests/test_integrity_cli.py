"""Issue 13 through the CLI: damaged artifacts are refused by report, lineage and verify;
unsafe names and unreadable files are one-line errors with exit 2, never tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from runner_helpers import chain, experiment, make_stage
from store_helpers import corrupt

from lima.runner import run_experiment
from lima.settings import Settings
from lima.stages import StageContext
from lima.store import open_store

pytestmark = pytest.mark.usefixtures("ray_local")


def write_report(ctx: StageContext) -> None:
    (ctx.output_dir / "report.html").write_text("<html><p>win rate 41 %</p></html>" * 20)
    (ctx.output_dir / "figures").mkdir()
    (ctx.output_dir / "figures" / "wins.png").write_bytes(bytes(range(256)) * 4)


def lima(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIMA_")}
    env["LIMA_WORK_DIR"] = str(settings.work_dir)
    return subprocess.run(
        [sys.executable, "-m", "lima.cli", *args],
        env=env,
        cwd=settings.work_dir.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def finished(settings: Settings):
    """A finished run of the test graph with a report stage, as `lima run` leaves it."""
    stages = [*chain(), make_stage("report", ("judge",), extra=write_report)]
    results = run_experiment(experiment(), settings, stages=stages)
    assert [r.status for r in results] == ["done"] * 5
    return open_store(settings, experiment().spec.storage), results


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def test_a_flipped_byte_in_the_report_is_never_served(settings: Settings, finished) -> None:
    store, results = finished
    served = lima(settings, "report", "demo")
    assert served.returncode == 0 and served.stdout.strip().endswith("report.html")
    report = store.manifest("report", results[-1].key)
    corrupt(store, report.object("report.html").key)
    line = one_error_line(lima(settings, "report", "demo"))
    assert "report.html: sha256 differs from the manifest" in line
    assert "report.html: sha256 differs" in one_error_line(lima(settings, "lineage", "demo"))


def test_lima_verify_names_every_damaged_object(settings: Settings, finished) -> None:
    store, results = finished
    clean = lima(settings, "verify", "demo")
    assert clean.returncode == 0 and clean.stdout.count("  ok  ") == 5, clean.stdout
    corrupt(store, store.manifest("curate", results[0].key).objects[0].key)
    store.backend.delete(store.manifest("report", results[-1].key).object("figures/wins.png").key)
    damaged = lima(settings, "verify", "demo")
    assert damaged.returncode == 2
    assert "DAMAGED  curate" in damaged.stdout and "out.json: sha256 differs" in damaged.stdout
    assert "DAMAGED  report" in damaged.stdout and "figures/wins.png: missing" in damaged.stdout
    assert damaged.stdout.count("  ok  ") == 3
    quick = lima(settings, "verify", "demo", "--quick")  # sizes only: the flipped byte passes
    assert quick.returncode == 2 and "DAMAGED  curate" not in quick.stdout


def test_a_truncated_run_record_is_named_and_the_others_still_shown(
    settings: Settings, finished
) -> None:
    store, _ = finished
    run_experiment(experiment(), settings, stages=chain())
    first = store.runs("demo")[0]
    key = store.key_of("runs", "demo", f"{first['run_id']}.json")
    path = store.backend.path(key)
    path.write_bytes(path.read_bytes()[:100])
    done = lima(settings, "status", "demo")
    assert done.returncode == 0, done.stderr
    assert f"unreadable run record {path.as_uri()}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("name", ["..", "../other", "a/b"])
def test_unsafe_names_are_one_line_errors(settings: Settings, name: str) -> None:
    for command in ("status", "lineage", "report", "verify"):
        assert "is not a safe name" in one_error_line(lima(settings, command, name))


def test_a_binary_spec_is_a_spec_error(settings: Settings, tmp_path: Path) -> None:
    spec = tmp_path / "model.yaml"
    spec.write_bytes((REPO / "examples" / "experiment.yaml").read_bytes()[:50] + b"\x00\x01\xff")
    done = lima(settings, "validate", str(spec))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "(file): binary content (NUL byte at offset 50)" in done.stderr
