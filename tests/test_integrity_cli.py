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


BAD_RECORDS = {
    "stages-not-objects": {"stages": [1, "x"]},
    "key-as-object": {"stages": [{"stage": "curate", "key": {"a": 1}, "status": "done"}]},
    "duration-as-text": {
        "stages": [{"stage": "curate", "key": "k", "status": "done", "duration_s": "slow"}]
    },
    "summary-as-list": {
        "stages": [{"stage": "curate", "key": "k", "status": "done", "summary": [1]}]
    },
    "run-id-as-list": {"run_id": ["x"], "stages": []},
}


@pytest.mark.parametrize("shape", sorted(BAD_RECORDS))
def test_a_run_record_of_the_wrong_shape_is_skipped_and_named(
    settings: Settings, finished, shape: str
) -> None:
    """Valid JSON, wrong shape: every reader skips it with a warning naming the file."""
    store, _ = finished
    good = store.runs("demo")[-1]["run_id"]
    bad = {
        "run_id": "29990101T000000-bad000",
        "experiment": "demo",
        "started_at": "2999-01-01T00:00:00Z",  # the newest: what `latest` would pick
        **BAD_RECORDS[shape],
    }
    store.record_run("demo", "29990101T000000-bad000", bad)
    path = store.backend.path(store.key_of("runs", "demo", "29990101T000000-bad000.json"))
    for args in (
        ("status", "demo"),
        ("lineage", "demo"),
        ("report", "demo"),
        ("verify", "demo"),
        ("diff", good, good),
    ):
        done = lima(settings, *args)
        assert done.returncode == 0, (args, done.stderr)
        assert "Traceback" not in done.stderr
        assert f"unreadable run record {path.as_uri()}" in done.stderr, (args, done.stderr)
    done = lima(settings, "diff", good, "29990101T000000-bad000")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: no run '29990101T000000-bad000'")


@pytest.mark.parametrize("opening", ["[", "{a: "])
def test_a_deeply_nested_spec_is_a_spec_error(
    settings: Settings, tmp_path: Path, opening: str
) -> None:
    closing = "]" if opening == "[" else "}"
    head = "apiVersion: lima-run.io/v1alpha1\nkind: Experiment\nmetadata: {name: deep}\n"
    for depth in (600, 5000):
        spec = tmp_path / "deep.yaml"
        spec.write_text(f"{head}spec: {opening * depth}1{closing * depth}\n")
        done = lima(settings, "validate", str(spec))
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "(document): nested too deeply" in done.stderr


def test_a_dotenv_in_another_encoding_is_a_settings_error(settings: Settings) -> None:
    dotenv = settings.work_dir.parent / ".env"
    dotenv.write_bytes(b"LIMA_BUCKET=x\nLIMA_S3_SECRET_KEY=s3cr3t-\xe9t\xe9-value\n")
    for command in ("status", "lineage"):
        line = one_error_line(lima(settings, command, "demo"))
        assert f"cannot read {dotenv}: not UTF-8 text" in line
        assert "s3cr3t" not in line and "value" not in line
