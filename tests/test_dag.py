"""The stage graph: one walk (plan), keys that follow content and not the checkout's location."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lima import dag
from lima.errors import LimaError
from lima.results import SelectResult
from lima.settings import Settings
from lima.spec.load import load_experiment
from lima.store import open_store

REPO = Path(__file__).resolve().parents[1]


def _checkout(tmp_path: Path, name: str) -> Path:
    """A copy of examples/ somewhere else, as another clone or machine would have it."""
    folder = tmp_path / name / "examples"
    shutil.copytree(REPO / "examples", folder, ignore=shutil.ignore_patterns("src"))
    return folder


def test_graph_order_and_ancestors() -> None:
    assert dag.NAMES == ("curate", "train", "select", "generate", "judge", "report")
    assert dag.ancestors("generate") == {"curate", "train", "select"}
    assert [s.name for s in dag.topological(reversed(dag.GRAPH))] == list(dag.NAMES)
    with pytest.raises(LimaError, match="unknown stage 'nope'"):
        dag.get("nope")


def test_plan_keys_stop_at_the_first_missing_artifact(tmp_path: Path) -> None:
    experiment = load_experiment(REPO / "examples/experiment.yaml")
    planned = dag.plan(experiment, open_store(Settings(work_dir=tmp_path), experiment.spec.storage))
    assert planned[0].key and planned[0].runnable and not planned[0].cached
    assert all(p.key is None and not p.runnable for p in planned[1:])


def test_keys_do_not_depend_on_where_the_checkout_is(tmp_path: Path) -> None:
    one = load_experiment(_checkout(tmp_path, "clone-alpha") / "experiment.yaml")
    two = load_experiment(_checkout(tmp_path, "clone-beta") / "experiment.yaml")
    for config in (dag.curate_config, dag.generate_config, dag.select_config):
        assert config(one) == config(two), config.__name__
    assert "clone-alpha" not in str(dag.curate_config(one))


def test_an_edited_prompt_set_changes_the_keys_that_read_it(tmp_path: Path) -> None:
    folder = _checkout(tmp_path, "edit")
    experiment = load_experiment(folder / "experiment.yaml")
    before = dag.generate_config(experiment), dag.curate_config(experiment)
    questions = folder / "data/eval/vicuna_question.jsonl"
    questions.write_text(questions.read_text().replace("How", "Why", 1))
    after = dag.generate_config(experiment), dag.curate_config(experiment)
    assert before[0] != after[0]
    assert before[1] != after[1]  # curation is decontaminated against the prompt set


def test_a_stage_must_return_its_result_type() -> None:
    select = dag.get("select")
    good = SelectResult(selected_epoch=2, score=0.5, judge="j", proxy=True, epochs=[1, 2])
    assert select.check_result(good)["selected_epoch"] == 2
    with pytest.raises(LimaError, match="expected SelectResult"):
        select.check_result({"best_epoch": 2})
