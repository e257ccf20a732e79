"""A Ray Data actor pool of model replicas answering a prompt set.

`answer_prompts` turns the prompts into a Ray Dataset (sorted by length so each batch pads
little), maps batches through `resources.workers` replica actors (each loads the model once, with
`resources.cpus` CPUs / `resources.gpus` GPUs), and returns one answer record per prompt in the
input order. Replicas find the model by `ModelRef`: a local folder when the driver's path is
visible to them (a laptop), otherwise they fetch the artifact's objects from the store (a
cluster, where workers run on other nodes).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lima.generation.config import DecodeConfig
from lima.generation.prompts import PromptRecord


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
    """A Ray Data actor: one engine, many batches."""

    def __init__(
        self,
        model: ModelRef,
        config: dict[str, Any],
        engine: str,
        device: str,
        threads: float,
        settings: Any,
        storage: Any,
    ) -> None:
        model_dir = model.materialize(settings, storage)
        decode = DecodeConfig(**config)
        if engine == "vllm":
            from lima.generation.vllm_engine import VLLMEngine

            self.engine: Any = VLLMEngine(model_dir, decode)
        else:
            from lima.generation.hf_engine import HFEngine

            self.engine = HFEngine(model_dir, decode, device=device, threads=int(threads))
        self.label = model.label

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        records = [PromptRecord.from_dict(json.loads(p)) for p in batch["payload"]]
        started = time.perf_counter()
        answers = self.engine.answer(records)
        elapsed = time.perf_counter() - started
        for answer in answers:
            answer["model"] = self.label
            answer["engine"] = self.engine.name
            answer["batch_wall_s"] = round(elapsed, 4)
        return {
            "id": np.array([a["id"] for a in answers], dtype=object),
            "result": np.array([json.dumps(a) for a in answers], dtype=object),
        }


def answer_prompts(
    records: list[PromptRecord],
    model: ModelRef,
    config: DecodeConfig,
    resources: Any,
    *,
    settings: Any,
    storage: Any,
    engine: str = "hf",
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Answer every record with `resources.workers` replicas; answers in `records` order."""
    import ray

    if not records:
        return []
    if engine == "vllm":
        from lima.generation.vllm_engine import check_available

        check_available()
    ordered = sorted(records, key=lambda r: (sum(len(t) for t in r.turns), r.id))
    dataset = ray.data.from_items(
        [{"id": r.id, "payload": json.dumps(r.to_dict())} for r in ordered]
    )
    gpus = int(getattr(resources, "gpus", 0) or 0)
    mapped = dataset.map_batches(
        Replica,
        batch_size=config.batch_size,
        batch_format="numpy",
        concurrency=min(int(resources.workers), len(records)),
        num_cpus=float(resources.cpus),
        num_gpus=gpus,
        fn_constructor_kwargs={
            "model": model,
            "config": config.to_dict(),
            "engine": engine,
            "device": "cuda" if gpus else "cpu",
            "threads": resources.cpus,
            "settings": settings,
            "storage": storage,
        },
    )
    found: dict[str, dict[str, Any]] = {}
    for row in mapped.iter_rows():
        found[str(row["id"])] = json.loads(row["result"])
        if progress is not None:
            progress(len(found), len(records))
    return [found[r.id] for r in records]
