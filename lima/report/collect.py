"""Gathering every number the report shows, each with the artifact it came from (lineage)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from lima.generation.checkpoints import metric_records
from lima.report.audit import LIMIT as AUDIT_LIMIT
from lima.report.audit import audit_rows

SPLITS = ("train", "dev", "test")


def lineage(manifest: Any) -> dict[str, Any]:
    """Where a number comes from: the artifact's stage, key, URI, digest, code version, inputs."""
    return {
        "stage": manifest.stage,
        "key": manifest.key,
        "uri": manifest.uri,
        "digest": manifest.digest,
        "code_version": manifest.code_version,
        "ended_at": manifest.ended_at,
        "inputs": [{"stage": i.stage, "digest": i.digest, "uri": i.uri} for i in manifest.inputs],
    }


def data_mix(curated: Path, sources: list[Any]) -> list[dict[str, Any]]:
    """Examples per source in each split of the curate artifact vs the source's quota."""
    counts = {split: Counter() for split in SPLITS}
    for split in SPLITS:
        path = curated / f"{split}.jsonl"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                counts[split][str(json.loads(line).get("source", "unknown"))] += 1
    names = [s.name for s in sources]
    names += sorted({n for c in counts.values() for n in c} - set(names))
    quotas = {s.name: s.quota for s in sources}
    return [
        {"source": n, "quota": quotas.get(n), **{s: counts[s].get(n, 0) for s in SPLITS}}
        for n in names
    ]


def training_curves(records: list[dict[str, Any]]) -> dict[str, list[Any]]:
    steps = [r for r in records if r.get("kind") == "step" and "loss" in r]
    epochs = [r for r in records if r.get("kind") == "epoch"]
    return {
        "step": [r.get("step") for r in steps],
        "loss": [r.get("loss") for r in steps],
        "lr": [r.get("lr") for r in steps],
        "epoch": [r.get("epoch") for r in epochs],
        "epoch_loss": [r.get("loss") for r in epochs],
        "dev_perplexity": [r.get("dev_perplexity") for r in epochs],
    }


def collect(ctx: Any) -> dict[str, Any]:
    """Everything the report shows, from the stage context's input artifacts."""
    store, inputs = ctx.store, ctx.inputs
    curated = ctx.input_dir(
        "curate", [f"{s}.jsonl" for s in SPLITS if _has(inputs["curate"], f"{s}.jsonl")]
    )

    def read(stage: str, path: str) -> Any:
        return json.loads(store.read_object(inputs[stage], path))

    results = read("judge", "results.json")
    verdicts = [
        json.loads(line)
        for line in store.read_object(inputs["judge"], "verdicts.jsonl").decode().splitlines()
        if line.strip()
    ]
    baselines = results.get("baselines") or []
    return {
        "experiment": ctx.experiment.metadata.name,
        "model": model_facts(ctx.spec.model),
        "audit": audit_rows(
            ctx.input_dir("generate"),
            verdicts,
            results["system"],
            baselines[0] if baselines else None,
        ),
        "audit_baseline": baselines[0] if baselines else None,
        "audit_limit": AUDIT_LIMIT,
        "results": results,
        "selection": read("select", "selection.json"),
        "generation": read("generate", "generate.json"),
        "curate_stats": read("curate", "stats.json")
        if _has(inputs["curate"], "stats.json")
        else None,
        "mix": data_mix(curated, ctx.spec.data.sources),
        "training": training_curves(metric_records(store, inputs["train"])),
        "train_spec": ctx.spec.train.model_dump(mode="json"),
        "lineage": {name: lineage(m) for name, m in inputs.items()},
    }


def model_facts(model: Any) -> dict[str, Any]:
    """The base model as the banner names it; `tiny` is a random-init stand-in, not a
    pretrained model."""
    stand_in = model.base == "tiny"
    note = "a randomly initialised built-in preset, not a pretrained model" if stand_in else None
    return {"base": model.base, "stand_in": stand_in, "note": note}


def _has(manifest: Any, path: str) -> bool:
    return any(o.path == path for o in manifest.objects)
