"""The `lima` command as a user runs it: real processes, real exit codes, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

DEMO = REPO / "examples" / "experiment.yaml"


def lima(*args: str, work: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIMA_")}
    env.update(LIMA_WORK_DIR=str(work), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "lima.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_validate_accepts_the_demo(tmp_path: Path) -> None:
    done = lima("validate", str(DEMO), work=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and "valid" in done.stdout and "demo" in done.stdout


def test_validate_lists_every_problem_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        DEMO.read_text()
        .replace("name: demo", "name: Demo_1", 1)
        .replace("epochs: 6 ", "epochs: -6 ", 1)
        .replace("  model:\n", "  modle: {}\n  model:\n", 1)
    )
    done = lima("validate", str(bad), work=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    assert "metadata.name:" in done.stderr
    assert "spec.train.epochs: must be >= 1 (got -6)" in done.stderr
    assert "spec.modle: unknown field" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "no/such/file.yaml"], "no such file"),
        (["stage", "nope", "--experiment", str(DEMO)], "unknown stage 'nope'"),
        (["run", str(DEMO), "--force-stage", "nope"], "unknown stage(s): nope"),
        (["lineage", "never-ran"], "no runs recorded"),
    ],
)
def test_user_mistakes_exit_2_with_a_message(tmp_path: Path, args: list[str], message: str) -> None:
    done = lima(*args, work=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_crd_command_prints_the_committed_crd(tmp_path: Path) -> None:
    done = lima("crd", work=tmp_path)
    assert done.returncode == 0
    committed = REPO / "helm" / "lima-run" / "crds" / "experiments.lima-run.io.yaml"
    assert done.stdout == committed.read_text()


@pytest.mark.slow
def test_demo_runs_end_to_end_then_is_all_cache_hits(tmp_path: Path) -> None:
    """`lima run` of the demo: every real stage, then a re-run that only reads manifests."""
    started = time.perf_counter()
    first = lima("run", str(DEMO), work=tmp_path)
    first_s = time.perf_counter() - started
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "0/6 cache hits" in first.stdout

    started = time.perf_counter()
    second = lima("run", str(DEMO), work=tmp_path)
    second_s = time.perf_counter() - started
    assert second.returncode == 0
    assert "6/6 cache hits" in second.stdout
    assert second_s < first_s / 5  # Ray is never started for a fully cached run

    chain = lima("lineage", "demo", work=tmp_path).stdout
    for stage in ("curate", "train", "select", "generate", "judge", "report"):
        assert f"/artifacts/{stage}/" in chain
    assert "<- train sha256:" in chain

    report = Path(lima("report", "demo", work=tmp_path).stdout.strip())
    html = report.read_text()
    assert report.name == "report.html" and "proxy" in html.lower()
    assert (report.parent / "wtl-test.png").stat().st_size > 1000
