"""Finding the train stage's consolidated epoch models and its metrics in its artifact.

The layout is defined once, in `lima.train.layout` (the module the train stage writes with).
"""

from __future__ import annotations

import json
from typing import Any

from lima.errors import StageError
from lima.train import layout


def epoch_models(manifest: Any) -> dict[int, str]:
    """{epoch: folder inside the artifact} of every consolidated HF model in a train artifact."""
    return layout.exported_models(entry.path for entry in manifest.objects)


def eligible_models(manifest: Any, eligible: list[int]) -> dict[int, str]:
    models = epoch_models(manifest)
    chosen = {e: models[e] for e in sorted(set(eligible)) if e in models}
    if not chosen:
        raise StageError(
            f"the train artifact {manifest.uri} has no consolidated model for the eligible epochs "
            f"{sorted(set(eligible))} (found epochs {sorted(models) or 'none'})"
        )
    return chosen


def metric_records(store: Any, manifest: Any) -> list[dict[str, Any]]:
    """Records of the train artifact's metrics file ([] when absent)."""
    if not any(o.path == layout.METRICS for o in manifest.objects):
        return []
    text = store.read_object(manifest, layout.METRICS).decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def epoch_perplexity(records: list[dict[str, Any]]) -> dict[int, float]:
    """{epoch: dev perplexity} from the epoch records (the last record of an epoch wins)."""
    out: dict[int, float] = {}
    for record in records:
        value = record.get("dev_perplexity")
        if record.get("kind", "epoch") == "epoch" and value is not None and "epoch" in record:
            out[int(record["epoch"])] = float(value)
    return out
