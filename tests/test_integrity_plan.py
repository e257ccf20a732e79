"""Issue 13: `lima plan` / `lima run --dry-run` say which stages would run, and why."""

from __future__ import annotations

import pytest
from runner_helpers import RUNS, chain, experiment
from typer.testing import CliRunner

from lima.runner import run_experiment
from lima.settings import Settings
from lima.store import open_store
from lima.store.plan import plan_lines

pytestmark = pytest.mark.usefixtures("ray_local")


def plan(exp, settings: Settings, **options) -> list[tuple[str, str, str]]:
    store = open_store(settings, exp.spec.storage)
    lines = plan_lines(exp, store, stages=chain(), **options)
    return [(line.stage, line.action, line.reason) for line in lines]


def test_plan_before_and_after_a_run(settings: Settings) -> None:
    exp = experiment()
    assert plan(exp, settings) == [
        ("curate", "run", "never computed for this experiment"),
        ("train", "run after inputs", "needs curate first"),
        ("generate", "run after inputs", "needs train first"),
        ("judge", "run after inputs", "needs generate, curate first"),
    ]
    RUNS.clear()
    run_experiment(exp, settings, stages=chain())
    assert [action for _, action, _ in plan(exp, settings)] == ["cached"] * 4
    assert RUNS["curate"] == 1  # planning computes nothing


def test_plan_names_the_changed_fields_and_forced_stages(settings: Settings) -> None:
    run_experiment(experiment(), settings, stages=chain())
    changed = experiment(epochs=3, eligible_epochs=[1, 2, 3])
    assert plan(changed, settings)[1:] == [
        ("train", "run", "config changed: eligible_epochs, epochs"),
        ("generate", "run after inputs", "needs train first"),
        ("judge", "run after inputs", "needs generate first"),
    ]
    assert plan(changed, settings)[0][1] == "cached"
    forced = plan(experiment(), settings, force_stages=["generate"])
    assert forced[2][1:] == ("run", "forced") and forced[3][1] == "run after inputs"


def test_plan_reports_a_damaged_cached_artifact(settings: Settings) -> None:
    exp = experiment()
    results = run_experiment(exp, settings, stages=chain())
    store = open_store(settings, exp.spec.storage)
    manifest = store.manifest("train", results[1].key)
    store.backend.delete(manifest.objects[0].key)
    line = plan(exp, settings)[1]
    assert line[:2] == ("train", "run")
    assert line[2].startswith("cached artifact is damaged: out.json: missing")


def test_lima_plan_and_dry_run_on_the_demo(tmp_path, monkeypatch) -> None:
    from conftest import REPO

    from lima.cli import app

    for name in ("LIMA_S3_ENDPOINT", "LIMA_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LIMA_WORK_DIR", str(tmp_path / "work"))
    spec = str(REPO / "examples" / "experiment.yaml")
    for args in (["plan", spec], ["run", "--dry-run", spec]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        lines = result.output.strip().splitlines()
        assert lines[0].split()[:2] == ["curate", "run"] and "never computed" in lines[0]
        assert [line.split()[0] for line in lines] == [
            "curate", "train", "select", "generate", "judge", "report",
        ]  # fmt: skip
    assert not (tmp_path / "work" / "artifacts").exists()  # a plan writes nothing
