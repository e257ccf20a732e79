"""A Ray Data actor pool of model replicas answering a prompt set.

`answer_many` turns (model, prompts) jobs into one Ray Dataset (sorted by model, then by prompt
length so each batch pads little), maps batches through `resources.workers` replica actors (with
`resources.cpus` CPUs / `resources.gpus` GPUs each; a replica loads a model once and keeps one
at a time), and returns one answer record per prompt in each job's order. One pass serves every
epoch of the select stage or every system of the generate stage, so replicas start once.
Replicas find the model by `ModelRef`: a local folder when the driver's path is visible to them
(a laptop), otherwise they fetch the artifact's objects from the store (a cluster, where workers
run on other nodes).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lima.generation.config import DecodeConfig
from lima.generation.prompt_sets import PromptRecord


@dataclass
class ModelRef:
    """Where a replica finds its model folder."""

    label: str
    """Name recorded with every answer (`epoch-5`, `base-model`)."""
    local_dir: str
    manifest_json: str | None = None
    """Manifest of the artifact holding the model, for replicas that cannot see `local_dir`."""
    subdir: str = ""
    """Folder of the model inside that artifact (`epoch-5`)."""
    prompt_format: str = "lima"
    """`lima` (lima-run's format: every fine-tuned epoch) or `native` (the model's own chat
    template, else the completion format); see lima.generation.formats."""

    def materialize(self, settings: Any, storage: Any) -> Path:
        local = Path(self.local_dir)
        if (local / "config.json").is_file() or self.manifest_json is None:
            return local
        from lima.store import Manifest, open_store

        manifest = Manifest.from_json(self.manifest_json)
        prefix = self.subdir.rstrip("/") + "/" if self.subdir else ""
        paths = [o.path for o in manifest.objects if o.path.startswith(prefix)]
        dest = Path(settings.scratch_dir) / "models" / manifest.key
        open_store(settings, storage).fetch(manifest, dest, paths)
        return dest / self.subdir if self.subdir else dest


class Replica:
    """A Ray Data actor: one engine at a time, many batches.

    Rows name their model by index into `models`; rows arrive sorted by model, so a replica
    loads each model about once and never holds two (memory stays one model per replica).
    """

    def __init__(
        self,
        models: list[ModelRef],
        config: dict[str, Any],
        engine: str,
        device: str,
        threads: float,
        settings: Any,
        storage: Any,
    ) -> None:
        self.models, self.config, self.kind = models, DecodeConfig(**config), engine
        self.device, self.threads = device, int(threads)
        self.settings, self.storage = settings, storage
        self.loaded: int | None = None
        self.engine: Any = None

    def _engine(self, index: int) -> Any:
        if self.loaded != index:
            self.engine = None  # free the previous model before loading the next
            model_dir = self.models[index].materialize(self.settings, self.storage)
            if self.kind == "vllm":
                from lima.generation.vllm_engine import VLLMEngine

                self.engine = VLLMEngine(
                    model_dir, self.config, prompt_format=self.models[index].prompt_format
                )
            else:
                from lima.generation.hf_engine import HFEngine

                self.engine = HFEngine(
                    model_dir,
                    self.config,
                    device=self.device,
                    threads=self.threads,
                    prompt_format=self.models[index].prompt_format,
                )
            self.loaded = index
        return self.engine

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        groups: dict[int, list[PromptRecord]] = {}
        for model, payload in zip(batch["model"], batch["payload"], strict=True):
            groups.setdefault(int(model), []).append(PromptRecord.from_dict(json.loads(payload)))
        models, ids, results, busy = [], [], [], []
        for index, records in groups.items():
            engine = self._engine(index)
            before = engine.busy_s
            answers = engine.answer(records)
            spent = round(engine.busy_s - before, 4)
            for position, answer in enumerate(answers):
                answer.update(model=self.models[index].label, engine=engine.name)
                models.append(index)
                ids.append(answer["id"])
                results.append(json.dumps(answer))
                busy.append(spent if position == 0 else 0.0)  # the group's time, counted once
        return {
            "model": np.array(models, dtype=np.int64),
            "id": np.array(ids, dtype=object),
            "result": np.array(results, dtype=object),
            "busy_s": np.array(busy, dtype=np.float64),
        }


def answer_many(
    jobs: list[tuple[ModelRef, list[PromptRecord]]],
    config: DecodeConfig,
    resources: Any,
    *,
    settings: Any,
    storage: Any,
    engine: str = "hf",
    progress: Callable[[int, int], None] | None = None,
    throughput: dict[str, dict[str, float]] | None = None,
) -> list[list[dict[str, Any]]]:
    """Answer several (model, prompts) jobs in one pass of one actor pool (replicas start once).

    Returns, per job, one answer record per prompt in the job's prompt order. Answer records hold
    content only (they are hashed into artifact keys); the time replicas spent generating goes
    into `throughput` ({model label: answers, answer_tokens, generate_s, tokens_per_s}) when
    given, for the stage's summary.
    """
    import ray

    total = sum(len(records) for _, records in jobs)
    if total == 0:
        return [[] for _ in jobs]
    if engine == "vllm":
        from lima.generation.vllm_engine import check_available

        check_available()
    rows = [
        {"model": m, "id": r.id, "payload": json.dumps(r.to_dict()), "size": _size(r)}
        for m, (_, records) in enumerate(jobs)
        for r in records
    ]
    rows.sort(key=lambda row: (row["model"], row["size"], row["id"]))
    dataset = ray.data.from_items([{k: row[k] for k in ("model", "id", "payload")} for row in rows])
    gpus = int(getattr(resources, "gpus", 0) or 0)
    mapped = dataset.map_batches(
        Replica,
        batch_size=config.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(
            size=max(1, min(int(resources.workers), total // config.batch_size + 1))
        ),
        num_cpus=float(resources.cpus),
        num_gpus=gpus,
        fn_constructor_kwargs={
            "models": [model for model, _ in jobs],
            "config": config.to_dict(),
            "engine": engine,
            "device": "cuda" if gpus else "cpu",
            "threads": resources.cpus,
            "settings": settings,
            "storage": storage,
        },
    )
    found: dict[tuple[int, str], dict[str, Any]] = {}
    busy: dict[int, float] = {}
    for row in mapped.iter_rows():
        found[(int(row["model"]), str(row["id"]))] = json.loads(row["result"])
        busy[int(row["model"])] = busy.get(int(row["model"]), 0.0) + float(row["busy_s"])
        if progress is not None:
            progress(len(found), total)
    answered = [[found[(m, r.id)] for r in records] for m, (_, records) in enumerate(jobs)]
    if throughput is not None:
        for m, ((model, _), records) in enumerate(zip(jobs, answered, strict=True)):
            _add_throughput(throughput.setdefault(model.label, {}), records, busy.get(m, 0.0))
    return answered


def _add_throughput(into: dict[str, float], records: list[dict[str, Any]], busy_s: float) -> None:
    """Add one job's answers to a model's figures (a model answers one job per prompt set)."""
    tokens = sum(t.get("answer_tokens") or 0 for r in records for t in r["turns"])
    into["answers"] = into.get("answers", 0) + len(records)
    into["answer_tokens"] = into.get("answer_tokens", 0) + tokens
    into["generate_s"] = round(into.get("generate_s", 0.0) + busy_s, 3)
    spent = into["generate_s"]
    into["tokens_per_s"] = round(into["answer_tokens"] / spent, 2) if spent > 0 else 0.0


def answer_prompts(
    records: list[PromptRecord],
    model: ModelRef,
    config: DecodeConfig,
    resources: Any,
    **options: Any,
) -> list[dict[str, Any]]:
    """Answer every record with one model; answers in `records` order."""
    return answer_many([(model, records)], config, resources, **options)[0]


def _size(record: PromptRecord) -> int:
    return sum(len(t) for t in record.turns)
