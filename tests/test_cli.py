"""The `lima` command as a user runs it: real processes, real exit codes, no tracebacks.

The end-to-end runs of the demo (under a pseudo-terminal, Ctrl-C, diff) are in
tests/test_cli_terminal.py; everything here stops before Ray starts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

DEMO = REPO / "examples" / "experiment.yaml"


def _registered() -> list[str]:
    """Every command registered in lima.cli, also by other areas (nested groups as `a b`)."""
    import typer

    from lima.cli import app

    def walk(group, prefix: str) -> list[str]:
        names = []
        for name, command in group.commands.items():
            names.append(f"{prefix}{name}")
            if hasattr(command, "commands"):
                names += walk(command, f"{prefix}{name} ")
        return names

    return walk(typer.main.get_command(app), "")


COMMANDS = _registered()


def lima(
    *args: str, work: Path | None, cwd: Path = REPO, timeout: int = 600, **env: str
) -> subprocess.CompletedProcess[str]:
    """`lima ARGS` in a fresh process; `work=None` leaves the work directory to discovery."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LIMA_")}
    clean.update(COLUMNS="200", PYTHONPATH=str(REPO), **env)
    if work is not None:
        clean["LIMA_WORK_DIR"] = str(work)
    return subprocess.run(
        [sys.executable, "-m", "lima.cli", *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def demo_variant(folder: Path, edit) -> Path:
    """A copy of the demo next to the demo's data (so its relative paths still resolve)."""
    document = yaml.safe_load(DEMO.read_text())
    edit(document["spec"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").symlink_to(DEMO.parent / "data")
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


# ── item 2: paths relative to the Experiment file, work dir found upward ───────────────────


def test_validate_from_another_folder_finds_the_demo_data(tmp_path: Path) -> None:
    """`cd /tmp && lima validate /repo/examples/experiment.yaml`: every glob matches."""
    done = lima("validate", str(DEMO), work=tmp_path / "w", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("valid ") and "Experiment demo" in first


EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_shipped_example_validates_from_another_folder(tmp_path: Path, example: Path) -> None:
    done = lima("validate", str(example), "--offline", work=tmp_path / "w", cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_spec_paths_are_anchored_at_the_file_not_the_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lima.spec.load import load_experiment

    monkeypatch.chdir(tmp_path)
    spec = load_experiment(DEMO).spec
    data = DEMO.parent.resolve() / "data"
    assert spec.data.sources[0].uri == str(data / "stackexchange" / "*.xml")
    assert spec.generate.prompt_sets[0].uri == "curated:test"  # not a path: unchanged
    assert spec.generate.prompt_sets[1].uri == str(data / "eval" / "vicuna_question.jsonl")
    assert spec.model.base == "tiny"


def test_work_dir_is_found_upward_from_a_subfolder(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / "docs" / "deep").mkdir(parents=True)
    done = lima("status", work=None, cwd=project / "docs" / "deep")
    assert done.returncode == 0, done.stderr
    assert f"no runs recorded in {project / '.lima'}" in done.stdout
    # an existing .lima nearer than the repository root wins, like a nested .git
    (project / "docs" / ".lima").mkdir()
    nearer = lima("status", work=None, cwd=project / "docs" / "deep")
    assert f"no runs recorded in {project / 'docs' / '.lima'}" in nearer.stdout
    env = lima("status", work=tmp_path / "elsewhere", cwd=project / "docs" / "deep")
    assert f"no runs recorded in {tmp_path / 'elsewhere'}" in env.stdout


# ── item 3: one preflight, shared by validate and run ──────────────────────────────────────


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (
            lambda s: s["data"]["sources"][0].update(uri="data/stackexchange/*.nope"),
            "spec.data.sources[0].uri",
            "matches no file",
        ),
        (
            lambda s: s["generate"]["prompt_sets"][1].update(uri="data/eval/missing.jsonl"),
            "spec.generate.prompt_sets[1].uri",
            "matches no file",
        ),
        (
            lambda s: s["judge"].update(backend="openai", model="judge-model"),
            "spec.judge.backend",
            "LIMA_JUDGE_BASE_URL",
        ),
        (
            lambda s: (
                s.update(model={"base": "no-such-org/no-such-model"})
                or s["judge"].update(allow_proxy=True)
            ),
            "spec.model.base",
            "not in the local Hugging Face cache",
        ),
        (
            lambda s: (
                s.update(model={"base": "./models/missing"}) or s["judge"].update(allow_proxy=True)
            ),
            "spec.model.base",
            "not a Hugging Face model folder",
        ),
    ],
)
def test_validate_fails_what_run_would_fail_later(
    tmp_path: Path, edit, field: str, message: str
) -> None:
    path = demo_variant(tmp_path / "exp", edit)
    done = lima("validate", str(path), work=tmp_path / "w")
    assert done.returncode == 2, done.stdout + done.stderr
    line = next((x for x in done.stderr.splitlines() if field in x), "")
    assert message in line, done.stderr
    assert "Traceback" not in done.stderr


def test_judge_endpoint_reachability_is_checked_unless_offline(tmp_path: Path) -> None:
    path = demo_variant(
        tmp_path / "exp", lambda s: s["judge"].update(backend="openai", model="judge-model")
    )
    unreachable = {"LIMA_JUDGE_BASE_URL": "http://127.0.0.1:9/v1"}  # discard port: refused
    online = lima("validate", str(path), work=tmp_path / "w", **unreachable)
    assert online.returncode == 2
    assert "spec.judge.backend: the judge endpoint http://127.0.0.1:9/v1/models is unreachable" in (
        online.stderr
    )
    offline = lima("validate", str(path), "--offline", work=tmp_path / "w", **unreachable)
    assert offline.returncode == 0, offline.stderr


def test_proxy_judge_on_a_real_model_is_a_warning(tmp_path: Path) -> None:
    model = tmp_path / "exp" / "my-model"
    model.mkdir(parents=True)
    shape = {"hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2}
    shape.update(num_attention_heads=4, vocab_size=1000, model_type="llama")
    (model / "config.json").write_text(json.dumps(shape))  # a small model: fits the demo's 4Gi

    def real_model_with_proxy(spec: dict) -> None:
        spec["model"] = {"base": "my-model"}  # relative to the file: the user's folder
        spec["judge"].update(allow_proxy=True)
        spec["judge"]["baselines"] = []

    path = demo_variant(tmp_path / "exp", real_model_with_proxy)
    done = lima("validate", str(path), work=tmp_path / "w")
    assert done.returncode == 0, done.stderr
    assert "warning spec.judge.backend: `reference` is a proxy judge" in done.stderr


def test_the_readme_example_validates_for_a_cluster(tmp_path: Path) -> None:
    """The README's 7B example: valid offline; its 8 GPUs are only a warning on this machine."""
    readme = (REPO / "README.md").read_text()
    example = re.search(r"```yaml\n(apiVersion.*?)```", readme, re.S)
    assert example is not None
    path = tmp_path / "lima-7b.yaml"
    path.write_text(example.group(1))
    env = {
        "LIMA_JUDGE_BASE_URL": "http://vllm:8000/v1",
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
    }
    done = lima("validate", str(path), "--offline", work=tmp_path / "w", **env)
    assert done.returncode == 0, done.stderr
    assert "warning spec.resources.train.gpus" in done.stderr


def test_run_stops_before_ray_when_resources_exceed_the_machine(tmp_path: Path) -> None:
    path = demo_variant(tmp_path / "exp", lambda s: s["resources"]["generate"].update(cpus=64))
    done = lima("run", str(path), work=tmp_path / "w", timeout=60)
    assert done.returncode == 2
    assert "spec.resources.generate: 2 workers x 64 cpus exceed" in done.stderr
    assert not (tmp_path / "w" / "logs").exists()  # nothing started


# ── item 4 and 12: status, --run, --output json, exit codes ────────────────────────────────


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "no/such/file.yaml"], "no such file"),
        (["stage", "nope", "--experiment", str(DEMO)], "unknown stage 'nope'"),
        (["stage", "curate"], "name the Experiment once"),
        (["run", str(DEMO), "--force-stage", "nope"], "unknown stage(s): nope"),
        (["status", "nonexistent"], "no experiment or run named 'nonexistent'"),
        (["lineage", "never-ran"], "no runs recorded"),
        (["lineage"], "name an experiment, or a run with --run"),
        (["report", "never-ran"], "no runs recorded"),
        (["report", "--run", "20990101T000000-abcdef"], "no run '20990101T000000-abcdef'"),
        (["diff", "a-run", "b-run"], "no run 'a-run'"),
        (["status", "--output", "yaml"], "Invalid value"),
    ],
)
def test_usage_errors_and_not_found_exit_2_with_a_message(
    tmp_path: Path, args: list[str], message: str
) -> None:
    done = lima(*args, work=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_plan_json_before_any_run(tmp_path: Path) -> None:
    done = lima("plan", str(DEMO), "--output", "json", work=tmp_path)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["experiment"] == "demo"
    assert [s["stage"] for s in plan["stages"]][:2] == ["curate", "train"]
    assert plan["stages"][0]["action"] == "run" and plan["stages"][1]["action"] != "cached"


def test_status_json_of_an_empty_store(tmp_path: Path) -> None:
    done = lima("status", "--output", "json", work=tmp_path)
    assert done.returncode == 0
    assert json.loads(done.stdout) == {"runs": []}


# ── item 11: conventions ───────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_shows_no_python_types(tmp_path: Path, command: str | None) -> None:
    done = lima(*(command.split() if command else []), "--help", work=tmp_path)
    assert done.returncode == 0
    assert not re.search(r"<(bool|str|int|float|path|list\[\w+\])>", done.stdout), done.stdout


def test_version_and_shell_completion(tmp_path: Path) -> None:
    from lima import __version__

    version = lima("--version", work=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"lima-run {__version__}"
    completion = lima("--show-completion", "bash", work=tmp_path)
    assert completion.returncode == 0, completion.stderr
    assert "_LIMA_COMPLETE=complete_bash" in completion.stdout


def test_init_scaffolds_an_experiment_that_validates(tmp_path: Path) -> None:
    created = lima("init", "my-first", work=tmp_path / "w", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    experiment = tmp_path / "my-first" / "experiment.yaml"
    assert yaml.safe_load(experiment.read_text())["metadata"]["name"] == "my-first"
    assert (tmp_path / "my-first" / "data" / "examples.jsonl").stat().st_mode & 0o777 == 0o644
    checked = lima("validate", str(experiment), work=tmp_path / "w", cwd=REPO)
    assert checked.returncode == 0, checked.stderr
    again = lima("init", "my-first", work=tmp_path / "w", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr


def test_crd_command_prints_the_committed_crd(tmp_path: Path) -> None:
    done = lima("crd", work=tmp_path)
    assert done.returncode == 0
    committed = REPO / "helm" / "lima-run" / "crds" / "experiments.lima-run.io.yaml"
    assert done.stdout == committed.read_text()


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


def test_stored_files_are_0644_not_mkstemps_0600(tmp_path: Path) -> None:
    """Reports and artifacts are files users open and share: the usual mode, like `open()`."""
    from lima.store.backends import FileBackend

    backend = FileBackend(tmp_path / "store")
    backend.put_bytes("lima/artifacts/report/k/report.html", b"<html></html>")
    assert backend.put_if_absent("lima/runs/demo/r.json", b"{}")
    for key in ("lima/artifacts/report/k/report.html", "lima/runs/demo/r.json"):
        assert backend.path(key).stat().st_mode & 0o777 == 0o644
