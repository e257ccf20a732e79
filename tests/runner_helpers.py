"""Test-only stages and a small Experiment for the runner and store fault tests.

These stages exist only in tests (the product ships no fake stage): each writes a file derived
from its config and inputs, and counts its runs so tests can see what was recomputed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from lima.spec import Experiment
from lima.spec.load import parse_experiment
from lima.stages import Stage, StageContext

RUNS: Counter[str] = Counter()


def experiment(name: str = "demo", **train: Any) -> Experiment:
    return parse_experiment(
        {
            "apiVersion": "lima-run.io/v1alpha1",
            "kind": "Experiment",
            "metadata": {"name": name},
            "spec": {
                "data": {"sources": [{"name": "s", "kind": "authored", "uri": "x", "quota": 3}]},
                "train": {"epochs": 2, "eligible_epochs": [1, 2], **train},
            },
        }
    )


def make_stage(
    name: str,
    inputs: tuple[str, ...] = (),
    *,
    version: str = "1",
    section: str = "data",
    extra: Callable[[StageContext], None] | None = None,
    fail: bool = False,
) -> Stage:
    """A stage whose output is a JSON of its config and its inputs' contents."""

    def run(ctx: StageContext) -> dict[str, Any]:
        RUNS[name] += 1
        if fail:
            raise RuntimeError(f"{name} broke on purpose")
        upstream = {i: (ctx.input_dir(i) / "out.json").read_text() for i in inputs}
        config = getattr(ctx.spec, section).model_dump(mode="json")
        (ctx.output_dir / "out.json").write_text(
            json.dumps({"stage": name, "config": config, "inputs": upstream}, sort_keys=True)
        )
        if extra is not None:
            extra(ctx)
        return {"inputs": sorted(inputs)}

    return Stage(
        name=name,
        version=version,
        inputs=inputs,
        config=lambda exp: getattr(exp.spec, section).model_dump(mode="json"),
        run=run,
        description=f"test stage {name}",
    )


def chain(**overrides: Stage) -> list[Stage]:
    """curate -> train -> generate, with judge also reading curate (a small DAG)."""
    stages = {
        "curate": make_stage("curate"),
        "train": make_stage("train", ("curate",), section="train"),
        "generate": make_stage("generate", ("train",), section="generate"),
        "judge": make_stage("judge", ("generate", "curate"), section="judge"),
    }
    stages.update(overrides)
    return list(stages.values())
