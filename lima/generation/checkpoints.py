"""Finding the train stage's consolidated epoch models and its metrics in its artifact.

The train artifact holds, per eligible epoch, an HF folder (config.json, weights, tokenizer with
EOT, lima_chat.json) somewhere under a path component `epoch-N` or `epoch-00N` (the exact nesting
is the train stage's business), and `metrics.jsonl` with per-step and per-epoch records.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lima.errors import StageError

_EPOCH = re.compile(r"(?:^|/)epoch-0*(\d+)(?:/|$)")


def epoch_models(manifest: Any) -> dict[int, str]:
    """{epoch: folder inside the artifact} of every consolidated HF model in a train artifact."""
    found: dict[int, str] = {}
    for entry in manifest.objects:
        if not entry.path.endswith("config.json") or entry.path.endswith("generation_config.json"):
            continue
        folder = entry.path.rsplit("/", 1)[0] if "/" in entry.path else ""
        match = _EPOCH.search(folder)
        if match is None:
            continue
        if any(o.path == f"{folder}/tokenizer_config.json" for o in manifest.objects):
            found.setdefault(int(match.group(1)), folder)
    return dict(sorted(found.items()))


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
    """Records of the train artifact's `metrics.jsonl` (the top-level one; [] when absent)."""
    paths = [o.path for o in manifest.objects if o.path.rsplit("/", 1)[-1] == "metrics.jsonl"]
    if not paths:
        return []
    path = min(paths, key=lambda p: (p.count("/"), p))
    text = store.read_object(manifest, path).decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def epoch_perplexity(records: list[dict[str, Any]]) -> dict[int, float]:
    """{epoch: dev perplexity} from the epoch records (the last record of an epoch wins)."""
    out: dict[int, float] = {}
    for record in records:
        value = record.get("dev_perplexity")
        if record.get("kind", "epoch") == "epoch" and value is not None and "epoch" in record:
            out[int(record["epoch"])] = float(value)
    return out
