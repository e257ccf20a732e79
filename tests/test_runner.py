"""The runner: DAG order, content keys, cache hits, forcing, failures, run records, lineage, Ray.

The stages are test-only (tests/runner_helpers.py); the product ships no fake stage.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runner_helpers import RUNS, chain, experiment, make_stage

from lima.dag import topological
from lima.errors import LimaError, StageError
from lima.runner import Events, RunOptions, StageRun, run_experiment, run_single_stage
from lima.settings import Settings
from lima.stages import Stage, StageContext
from lima.store import open_store

pytestmark = pytest.mark.usefixtures("ray_local")


@pytest.fixture(autouse=True)
def _fresh_counts() -> None:
    RUNS.clear()


def statuses(results: list[StageRun]) -> dict[str, str]:
    return {r.stage: r.status for r in results}


class Recorder(Events):
    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[tuple[str, str]] = []

    def stage_started(self, stage: Stage, key: str):
        self.started.append(stage.name)
        return lambda **_: None

    def stage_finished(self, result: StageRun) -> None:
        self.finished.append((result.stage, result.status))


def test_dag_order_and_second_run_is_all_cache_hits(settings: Settings) -> None:
    stages = list(reversed(chain()))  # declared out of order on purpose
    events = Recorder()
    first = run_experiment(experiment(), settings, stages=stages, events=events)
    assert [r.stage for r in first] == ["curate", "train", "generate", "judge"]
    assert events.started == ["curate", "train", "generate", "judge"]
    assert all(r.status == "done" and r.uri and r.digest for r in first)
    again = Recorder()
    second = run_experiment(experiment(), settings, stages=stages, events=again)
    assert statuses(second) == dict.fromkeys(statuses(first), "cached")
    assert all(r.cache_hit for r in second) and again.started == []
    assert [(r.key, r.digest) for r in second] == [(r.key, r.digest) for r in first]
    assert RUNS == {"curate": 1, "train": 1, "generate": 1, "judge": 1}


def test_config_change_reruns_only_downstream(settings: Settings) -> None:
    first = {r.stage: r for r in run_experiment(experiment(), settings, stages=chain())}
    changed = {r.stage: r for r in run_experiment(experiment(lr=0.5), settings, stages=chain())}
    assert statuses(list(changed.values())) == {
        "curate": "cached",
        "train": "done",
        "generate": "done",
        "judge": "done",
    }
    assert changed["train"].key != first["train"].key
    assert changed["generate"].key != first["generate"].key  # its input's digest changed
    assert changed["curate"].key == first["curate"].key
    assert RUNS == {"curate": 1, "train": 2, "generate": 2, "judge": 2}


def test_version_change_changes_the_key(settings: Settings) -> None:
    first = {r.stage: r for r in run_experiment(experiment(), settings, stages=chain())}
    bumped = chain(generate=make_stage("generate", ("train",), section="generate", version="2"))
    second = {r.stage: r for r in run_experiment(experiment(), settings, stages=bumped)}
    assert statuses(list(second.values())) == {
        "curate": "cached",
        "train": "cached",
        "generate": "done",
        "judge": "cached",
    }  # judge reads generate's content, which the bump left identical: still a hit
    assert second["generate"].key != first["generate"].key
    assert second["generate"].digest == first["generate"].digest


def test_input_change_changes_downstream_keys(settings: Settings) -> None:
    """Same config and version downstream, but an upstream output with other content."""
    first = {r.stage: r for r in run_experiment(experiment(), settings, stages=chain())}
    other = chain(
        curate=make_stage(
            "curate", version="2", extra=lambda c: (c.output_dir / "x").write_text("1")
        )
    )
    second = {r.stage: r for r in run_experiment(experiment(), settings, stages=other)}
    assert second["curate"].digest != first["curate"].digest
    assert second["train"].key != first["train"].key
    assert statuses(list(second.values())) == {
        "curate": "done",
        "train": "done",  # new input digest
        "generate": "cached",  # train's content did not change (it ignores the new file)
        "judge": "done",  # reads curate directly
    }


def test_force_and_force_stages(settings: Settings) -> None:
    run_experiment(experiment(), settings, stages=chain())
    forced = run_experiment(experiment(), settings, stages=chain(), options=RunOptions(force=True))
    assert set(statuses(forced).values()) == {"done"}
    one = run_experiment(
        experiment(), settings, stages=chain(), options=RunOptions(force_stages=["generate"])
    )
    assert statuses(one) == {
        "curate": "cached",
        "train": "cached",
        "generate": "done",
        "judge": "cached",
    }  # same inputs, same config: recomputed output has the same content, judge stays cached
    assert RUNS == {"curate": 2, "train": 2, "generate": 3, "judge": 2}
    with pytest.raises(LimaError, match="unknown stage"):
        run_experiment(
            experiment(), settings, stages=chain(), options=RunOptions(force_stages=["x"])
        )


def test_forced_stage_replaces_its_artifact(settings: Settings) -> None:
    """A forced stage whose output differs (e.g. training) replaces the artifact at its key,
    so the stages that read it run again."""
    noisy = make_stage(
        "train",
        ("curate",),
        section="train",
        extra=lambda c: (c.output_dir / "run.txt").write_text(str(RUNS["train"])),
    )
    first = {r.stage: r for r in run_experiment(experiment(), settings, stages=chain(train=noisy))}
    forced = run_experiment(
        experiment(),
        settings,
        stages=chain(train=noisy),
        options=RunOptions(force_stages=["train"]),
    )
    assert statuses(forced) == {
        "curate": "cached",
        "train": "done",
        "generate": "done",
        "judge": "cached",  # generate's output ignores run.txt: judge's inputs are unchanged
    }
    assert forced[1].key == first["train"].key and forced[1].digest != first["train"].digest
    assert open_store(settings).manifest("train", forced[1].key).digest == forced[1].digest


def test_only_runs_named_stages_and_needs_cached_inputs(settings: Settings) -> None:
    only = RunOptions(only=["train"])
    results = run_experiment(experiment(), settings, stages=chain(), options=only)
    assert statuses(results)["curate"] == "failed" and "not cached" in results[0].message
    run_experiment(experiment(), settings, stages=chain()[:1])
    results = run_experiment(experiment(lr=0.2), settings, stages=chain(), options=only)
    assert [r.status for r in results[:2]] == ["cached", "done"]
    assert statuses(results)["generate"] == "failed"  # not cached and not selected


def test_failing_stage_stops_the_run(settings: Settings) -> None:
    stages = chain(train=make_stage("train", ("curate",), section="train", fail=True))
    results = run_experiment(experiment(), settings, stages=stages)
    assert statuses(results) == {
        "curate": "done",
        "train": "failed",
        "generate": "skipped",
        "judge": "skipped",
    }
    assert results[1].message == "RuntimeError: train broke on purpose"
    store = open_store(settings)
    assert store.manifest("train", results[1].key) is None
    assert list(store.artifacts("train")) == []
    assert not any(settings.scratch_dir.glob("train-*"))  # the half-written output is gone
    (record,) = store.runs("demo")
    assert [(s["stage"], s["status"]) for s in record["stages"]] == list(statuses(results).items())
    assert record["stages"][1]["message"] == "RuntimeError: train broke on purpose"


class Stopping(Events):
    """Ctrl-C as the CLI sees it: the stop comes while train runs, and train then fails."""

    def __init__(self) -> None:
        self.stopped = False

    def stage_started(self, stage: Stage, key: str):
        if stage.name == "train":
            self.stopped = True
        return lambda **_: None

    def cancelled(self) -> bool:
        return self.stopped


def test_a_stopped_run_starts_nothing_more_and_leaves_the_record_to_the_interrupter(
    settings: Settings,
) -> None:
    stages = chain(train=make_stage("train", ("curate",), section="train", fail=True))
    results = run_experiment(experiment(), settings, stages=stages, events=Stopping())
    assert statuses(results) == {"curate": "done", "train": "failed"}
    assert RUNS == {"curate": 1, "train": 1}  # generate and judge never started
    assert open_store(settings).runs("demo") == []  # no "failed" record to hide the interruption


def test_stage_without_output_fails(settings: Settings) -> None:
    def nothing(ctx: StageContext) -> None:
        return None

    empty = Stage("curate", "1", (), lambda e: {}, nothing)
    (result,) = run_experiment(experiment(), settings, stages=[empty])
    assert result.status == "failed" and "produced no output" in result.message


def test_run_records_and_lineage(settings: Settings) -> None:
    run_experiment(experiment(), settings, stages=chain())
    run_experiment(experiment(), settings, stages=chain())
    store = open_store(settings)
    records = store.runs("demo")
    assert len(records) == 2 and records[0]["run_id"] != records[1]["run_id"]
    assert [s["status"] for s in records[1]["stages"]] == ["cached"] * 4
    assert all(r["started_at"] <= r["ended_at"] for r in records)
    by_stage = {s["stage"]: s for s in records[0]["stages"]}
    judge = store.manifest("judge", by_stage["judge"]["key"])
    assert {i.stage for i in judge.inputs} == {"generate", "curate"}
    chain_keys, current = [], judge
    while current.inputs:  # judge -> generate -> train -> curate
        ref = (
            next(i for i in current.inputs if i.stage != "curate")
            if current.stage == "judge"
            else current.inputs[0]
        )
        parent = store.manifest(ref.stage, ref.key)
        assert ref.digest == parent.digest and ref.uri == parent.uri
        chain_keys.append(ref.stage)
        current = parent
    assert chain_keys == ["generate", "train", "curate"]
    out = json.loads(store.read_object(judge, "out.json"))
    assert json.loads(out["inputs"]["generate"])["stage"] == "generate"
    assert judge.config == experiment().spec.judge.model_dump(mode="json")
    assert judge.code_version == "1" and judge.duration_s >= 0 and judge.summary


def test_run_single_stage(settings: Settings) -> None:
    with pytest.raises(LimaError, match="needs 'curate', which has no artifact yet"):
        run_single_stage(experiment(), settings, "train", stages=chain())
    with pytest.raises(LimaError, match="unknown stage"):
        run_single_stage(experiment(), settings, "nope", stages=chain())
    assert run_single_stage(experiment(), settings, "curate", stages=chain()).status == "done"
    assert run_single_stage(experiment(), settings, "train", stages=chain()).status == "done"
    assert run_single_stage(experiment(), settings, "train", stages=chain()).status == "cached"
    forced = run_single_stage(experiment(), settings, "train", stages=chain(), force=True)
    assert forced.status == "done" and RUNS["train"] == 2
    full = run_experiment(experiment(), settings, stages=chain())
    assert statuses(full)["train"] == "cached"  # the same keys as a whole run
    broken = chain(generate=make_stage("generate", ("train",), section="generate", fail=True))
    with pytest.raises(StageError, match="broke on purpose"):
        run_single_stage(experiment(), settings, "generate", stages=broken, force=True)
    assert any(r.get("single_stage") == "generate" for r in open_store(settings).runs("demo"))


def test_cycles_and_unknown_inputs_are_refused() -> None:
    with pytest.raises(LimaError, match="stage cycle"):
        topological([make_stage("a", ("b",)), make_stage("b", ("a",))])
    with pytest.raises(LimaError, match="needs unknown stage 'zz'"):
        topological([make_stage("a", ("zz",))])


def test_a_stage_runs_ray_tasks(settings: Settings, tmp_path: Path) -> None:
    import ray

    @ray.remote
    def square(x: int) -> int:
        return x * x

    def on_ray(ctx: StageContext) -> dict[str, int]:
        assert ray.is_initialized()  # the runner started or joined Ray before the stage
        values = ray.get([square.remote(i) for i in range(8)])
        (ctx.output_dir / "squares.json").write_text(json.dumps(values))
        ctx.progress(completed=8, total=8, note="squared")
        return {"sum": sum(values)}

    (result,) = run_experiment(
        experiment(), settings, stages=[Stage("squares", "1", (), lambda e: {}, on_ray)]
    )
    assert result.status == "done" and result.summary == {"sum": 140}
    manifest = open_store(settings).manifest("squares", result.key)
    assert json.loads(open_store(settings).read_object(manifest, "squares.json"))[-1] == 49
