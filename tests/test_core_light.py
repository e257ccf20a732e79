"""The light core: the stage graph, spec, store, Kubernetes builders and operator need no ML stack.

The operator image installs only lima-run's core dependencies (pyproject `dependencies`), so
everything it imports must work with torch, Ray, DeepSpeed and transformers absent. The test runs
a fresh interpreter in which importing any of them (or the other `ml`-extra libraries) fails,
exactly as it would where they are not installed, then walks the real graph of the example.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ML_ONLY = [
    "torch",
    "ray",
    "deepspeed",
    "transformers",
    "sentence_transformers",
    "datasketch",
    "numpy",
    "pyarrow",
    "matplotlib",
    "jinja2",
    "lxml",
    "html_to_markdown",
]

PROBE = """
import importlib.abc, sys

BLOCKED = set(sys.argv[1].split(","))

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: not in the core)")
        return None

sys.meta_path.insert(0, NotInstalled())

import lima_operator.handlers  # the operator's entry module (kopf -m lima_operator.handlers)
from lima import dag
from lima.k8s.crd import render_crd
from lima.k8s.rayjob import build_rayjob
from lima.settings import Settings
from lima.spec.load import load_experiment
from lima.store import open_store

experiment = load_experiment(sys.argv[2])
settings = Settings(work_dir=sys.argv[3])
planned = dag.plan(experiment, open_store(settings, experiment.spec.storage))
assert [p.name for p in planned] == list(dag.NAMES), planned
assert planned[0].key and planned[0].manifest is None and planned[1].key is None
assert render_crd()["kind"] == "CustomResourceDefinition"
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not loaded, loaded
print("core ok:", len(planned), "stages planned")
"""


def test_graph_and_operator_import_without_the_ml_stack(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            ",".join(ML_ONLY),
            str(REPO / "examples/experiment.yaml"),
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "core ok: 6 stages planned" in done.stdout


def test_core_dependencies_exclude_the_ml_stack_and_test_tools() -> None:
    """What the operator image installs (`pip install .`) is the core list alone."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = {_name(d) for d in project["dependencies"]}
    ml = {_name(d) for d in project["optional-dependencies"]["ml"]}
    assert {"torch", "ray", "deepspeed", "transformers"} <= ml
    assert not core & ml
    test_only = {"httpx", "psutil", "jsonschema", "kubernetes-validate", "pytest", "moto"}
    assert not core & test_only
    imported = {name.replace("_", "-") for name in ML_ONLY}
    assert not core & imported


def _name(requirement: str) -> str:
    for stop in "<>=[; ":
        requirement = requirement.split(stop)[0]
    return requirement.strip().lower()


CLI_PROBE = """
import importlib.abc, sys

BLOCKED = set(sys.argv[1].split(","))

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
sys.argv = ["lima", *sys.argv[2:]]
from lima.cli import main

main()
"""


def _lima_core_only(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`lima ARGS` where the ML extra is not installed (its imports fail as they would)."""
    return subprocess.run(
        [sys.executable, "-c", CLI_PROBE, ",".join(ML_ONLY), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**_clean_env(), "LIMA_WORK_DIR": str(tmp_path / "work"), "COLUMNS": "200"},
    )


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LIMA_")}


def test_running_stages_without_the_ml_extra_says_what_to_install(tmp_path: Path) -> None:
    demo = str(REPO / "examples/experiment.yaml")
    for args in (("run", demo), ("stage", "curate", demo)):
        done = _lima_core_only(tmp_path, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr[-2000:])
        assert done.stderr.strip().splitlines() == [
            "running stages needs the ML extra: pip install 'lima-run[ml]'"
        ], args
        assert "Traceback" not in done.stdout + done.stderr
        assert not (tmp_path / "work" / "logs").exists()  # refused before a run started
    # What needs no stage still works on the core (the plan of the same file).
    done = _lima_core_only(tmp_path, "plan", demo)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("curate ")
