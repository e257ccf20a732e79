"""Where the train stage puts things: the one definition read by the writer and the readers.

The stage's artifact (published by the runner, read by select, generate and the report):

    epoch-N/           consolidated HF model of an eligible epoch (config.json, weights,
                       tokenizer with the chat tokens, lima_chat.json)
    metrics.jsonl      one record per optimizer step and per epoch
    summary.json       data statistics, epochs, final metrics
    rejected.jsonl     input rows that could not be used, with their reason

The run folder in the artifact store (`<prefix>/train-runs/<run>/`), one folder per epoch:

    epoch-NNN/ds/...         DeepSpeed shards of every rank (dropped once older than
                             spec.train.keep_full_states newer complete epochs)
    epoch-NNN/done/rank-R    written by rank R after its shard is saved
    epoch-NNN/state.json     rank 0: epoch, global step, world size
    epoch-NNN/metrics.jsonl  rank 0: every record so far
    epoch-NNN/hf/            rank 0, eligible epochs only: the consolidated HF model
    diverged.json            written when the loss became NaN/inf
"""

from __future__ import annotations

from collections.abc import Iterable

# ---- the stage's artifact ------------------------------------------------------------------

METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
REJECTED = "rejected.jsonl"
MODEL_PREFIX = "epoch-"
HF_MARKERS = ("config.json", "tokenizer_config.json")
"""Files every exported model folder holds."""


def model_dir(epoch: int) -> str:
    """Folder of an epoch's consolidated model inside the artifact."""
    return f"{MODEL_PREFIX}{epoch}"


def model_epoch(folder: str) -> int | None:
    """The epoch of a folder named by `model_dir`, else None."""
    number = folder.removeprefix(MODEL_PREFIX)
    if folder.startswith(MODEL_PREFIX) and number.isdigit() and model_dir(int(number)) == folder:
        return int(number)
    return None


def exported_models(paths: Iterable[str]) -> dict[int, str]:
    """{epoch: folder} of the complete model folders among an artifact's file paths."""
    files = set(paths)
    found = {}
    for path in files:
        folder, _, name = path.partition("/")
        epoch = model_epoch(folder)
        complete = all(f"{folder}/{marker}" in files for marker in HF_MARKERS)
        if epoch is not None and name == HF_MARKERS[0] and complete:
            found[epoch] = folder
    return dict(sorted(found.items()))


# ---- the run folder (epoch checkpoints) ----------------------------------------------------

RUNS_DIR = "train-runs"
STATE = "state.json"
HF_DIR = "hf"
DS_DIR = "ds"
DONE_DIR = "done"
DIVERGED = "diverged.json"


def tag(epoch: int) -> str:
    """Name of an epoch's checkpoint folder in the run folder (and its DeepSpeed tag)."""
    return f"epoch-{epoch:03d}"


def tag_epoch(name: str) -> int | None:
    number = name.removeprefix("epoch-")
    if name.startswith("epoch-") and number.isdigit() and tag(int(number)) == name:
        return int(number)
    return None


def done_marker(rank: int) -> str:
    return f"{DONE_DIR}/rank-{rank}"
