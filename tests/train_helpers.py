"""Small synthetic conversations and a TrainJob factory for the train tests (no curate stage)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from lima.spec.model import ModelSpec, TinyPreset
from lima.spec.resources import StageResources, StorageSpec
from lima.spec.train import TrainSpec

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white"]
THINGS = ["apple", "leaf", "sky", "sun", "grape", "carrot", "night", "snow", "rose", "lime"]


def conversations(count: int, seed: int = 0, multi_turn_every: int = 4) -> list[dict[str, Any]]:
    """Rows shaped like curate's train.jsonl, with learnable answers and mixed lengths."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        thing, colour = rng.choice(THINGS), rng.choice(COLOURS)
        detail = " ".join(rng.choice(THINGS) for _ in range(rng.randint(0, 12)))
        turns = [
            f"What colour is the {thing}? {detail}".strip(),
            f"The {thing} is {colour}. Colours like {colour} are common.",
        ]
        if multi_turn_every and index % multi_turn_every == 0:
            turns += ["Are you sure?", f"Yes, the {thing} is {colour}."]
        rows.append(
            {
                "id": f"row-{index}",
                "conversations": turns,
                "source": "test",
                "provenance": {},
                "tags": [],
            }
        )
    return rows


def tiny_model_spec() -> ModelSpec:
    return ModelSpec(
        tiny=TinyPreset(
            hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, vocab_size=400
        )
    )


def make_job(
    tmp: Path,
    settings: Any,
    *,
    zero_stage: int = 2,
    epochs: int = 3,
    rows: int = 32,
    callbacks: tuple = (),
    run_name: str = "run",
    workers: int = 2,
    **train: Any,
):
    from lima.train.launch import TrainJob

    spec = TrainSpec(**{**small_recipe(zero_stage, epochs), **train})
    return TrainJob(
        model=tiny_model_spec(),
        train=spec,
        resources=StageResources(workers=workers, cpus=1),
        settings=settings,
        storage=StorageSpec(),
        train_rows=conversations(rows),
        dev_rows=conversations(8, seed=99),
        run_name=run_name,
        scratch_dir=tmp / "scratch",
        output_dir=tmp / "out",
        callbacks=callbacks,
    )


def small_recipe(zero_stage: int, epochs: int) -> dict[str, Any]:
    """The small, fast training recipe shared by `make_job` and `stage_experiment`."""
    return {
        "epochs": epochs,
        "eligible_epochs": [epochs],
        "global_batch_size": 8,
        "micro_batch_size": 2,
        "context_length": 64,
        "lr": 3e-3,
        "final_lr": 3e-4,
        "residual_dropout": 0.1,
        "zero_stage": zero_stage,
        "max_failures": 1,
    }


def stage_experiment(zero_stage: int = 3, epochs: int = 3):
    """An Experiment whose train section matches `make_job` (data section unused by train)."""
    from lima.spec import Experiment

    return Experiment.model_validate(
        {
            "apiVersion": "lima-run.io/v1alpha1",
            "kind": "Experiment",
            "metadata": {"name": "train-test"},
            "spec": {
                "data": {
                    "sources": [
                        {"name": "a", "kind": "authored", "uri": "unused.jsonl", "quota": 10}
                    ]
                },
                "model": tiny_model_spec().model_dump(mode="json"),
                "train": small_recipe(zero_stage, epochs),
                "resources": {"train": {"workers": 2, "cpus": 1}},
            },
        }
    )
