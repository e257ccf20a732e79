"""`lima plan`, `lima run --dry-run` and `lima run`'s closing lines on a sweep: every variant (by
name) and the comparison, not only the base spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from runner_helpers import chain, make_stage

from lima.spec.load import parse_experiment
from lima.store import open_store
from lima.sweep import plan_lines, run_sweep, summary_lines
from tests.conftest import REPO
from tests.test_cli import lima

QUANTITY = REPO / "examples" / "ablation-quantity.yaml"
STAGES = ("curate", "train", "select", "generate", "judge", "report")


@pytest.mark.parametrize("command", [("plan",), ("run", "--dry-run")])
def test_plan_of_a_sweep_lists_every_variant_then_the_comparison(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    done = lima(*command, str(QUANTITY), work=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "sweep quantity: 3 variants (n8, n16, n32), then the comparison"
    labels = [line.split()[0] for line in lines[1:]]
    assert labels == [f"{v}/{s}" for v in ("n8", "n16", "n32") for s in STAGES] + ["compare"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows["n8/curate"].split()[1] == "run"
    # The variants change only train.max_examples: one curation, run by the first variant.
    curate_key = rows["n8/curate"].split()[2]
    for variant in ("n16", "n32"):
        assert rows[f"{variant}/curate"].split()[1:3] == ["shared", curate_key]
        assert rows[f"{variant}/curate"].endswith("run by variant n8 first")
    assert "needs curate first" in rows["n32/train"]
    assert "needs every variant's curate, generate, judge first" in rows["compare"]


def test_plan_json_of_a_sweep_names_the_variants(tmp_path: Path) -> None:
    done = lima("plan", str(QUANTITY), "--output", "json", work=tmp_path)
    assert done.returncode == 0, done.stderr
    stages = json.loads(done.stdout)["stages"]
    assert [s["variant"] for s in stages] == [v for v in ("n8", "n16", "n32") for _ in STAGES] + [
        None
    ]
    assert stages[-1]["stage"] == "compare"


def _sweep() -> Any:
    return parse_experiment(
        {
            "apiVersion": "lima-run.io/v1alpha1",
            "kind": "Experiment",
            "metadata": {"name": "sw"},
            "spec": {
                "data": {"sources": [{"name": "s", "kind": "authored", "uri": "x", "quota": 3}]},
                "train": {"epochs": 2, "eligible_epochs": [1, 2]},
                "sweep": {
                    "variants": [
                        {"name": "a"},
                        {"name": "b", "patch": {"train": {"lr": 5e-4}}},
                        {"name": "c", "patch": {"train": {"lr": 8e-4}}},
                    ]
                },
            },
        }
    )


@pytest.mark.usefixtures("ray_local")
def test_a_sweep_run_sums_up_every_variant_and_plans_from_what_it_left(settings) -> None:
    """A real run_sweep (the runner, the store; the test stages of runner_helpers): the closing
    lines `lima run` prints, then `lima plan` on the same store."""

    def refuse_lr(ctx) -> None:
        if ctx.spec.train.lr == 8e-4:
            raise RuntimeError("variant c's training broke on purpose")

    stages = chain(train=make_stage("train", ("curate",), section="train", extra=refuse_lr))
    sweep = _sweep()
    result = run_sweep(sweep, settings, stages=stages)
    assert not result.ok and result.comparison is None
    assert summary_lines(result) == [
        "sweep sw: 3 variants",
        f"  {'a':<16} 4 ran, 0 cached",
        f"  {'b':<16} 3 ran, 1 cached",  # a's curation
        f"  {'c':<16} 0 ran, 1 cached, FAILED: train",
        "no comparison: variant(s) c did not finish",
    ]

    store = open_store(settings, sweep.spec.storage)
    lines = {line.label: line for line in plan_lines(sweep, store, stages=stages)}
    assert list(lines) == [f"{v}/{s}" for v in "abc" for s in [st.name for st in stages]] + [
        "compare"
    ]
    assert {lines[f"{v}/{s.name}"].action for v in "ab" for s in stages} == {"cached"}
    assert lines["c/curate"].action == "cached"
    assert lines["c/curate"].key == lines["a/curate"].key
    assert lines["c/train"].action == "run" and lines["c/generate"].action == "run after inputs"
    assert lines["compare"].action == "run after inputs"


@pytest.mark.parametrize("verify", [True, False])
def test_run_of_a_sweep_passes_its_options_to_every_variant(
    settings, monkeypatch, verify: bool
) -> None:
    """`lima run --verify --force-stage train SWEEP`: the sweep's runs get what the flags say."""
    from typer.testing import CliRunner

    import lima.console.run
    import lima.sweep
    from lima.cli import app

    seen = {}

    def record_options(experiment, settings, *, options, events):
        seen["options"] = options
        return lima.sweep.SweepRun(experiment, [], message="stopped here by the test")

    monkeypatch.setattr(lima.sweep, "run_sweep", record_options)
    monkeypatch.setattr(lima.console.run, "run_with_display", lambda _e, _s, start, *_: start(None))
    monkeypatch.setenv("LIMA_WORK_DIR", str(settings.work_dir))
    args = ["run", *(["--verify"] if verify else []), "--force-stage", "train", str(QUANTITY)]
    done = CliRunner().invoke(app, args)
    assert "stopped here by the test" in done.output, done.output
    options = seen["options"]
    assert options.verify is verify and options.force_stages == ["train"]
