"""Where the train stage puts things: the one definition read by the writer and the readers.

The stage's artifact (published by the runner, read by select, generate and the report):

    epoch-N/           consolidated HF model of an eligible epoch (config.json, weights,
                       tokenizer with the chat tokens, lima_chat.json)
    metrics.jsonl      one record per optimizer step and per epoch
    summary.json       data statistics, epochs, final metrics
    rejected.jsonl     input rows that could not be used, with their reason

The run folders in the artifact store: one key folder per train key, one run folder per run
of that key (`<prefix>/train-runs/train-<key16>/<run id>/`), so two runs of one key, or a
resumed run and a stale one, never write the same files. Run ids sort by start time
(`YYYYmmddTHHMMSS-xxxxxx`). In a run folder, one folder per epoch:

    epoch-NNN/ds/...                DeepSpeed shards of every rank (dropped once older than
                                    spec.train.keep_full_states newer complete epochs)
    epoch-NNN/lima-sha256/rank-R.json  rank R: sha256 and size of every file it wrote for
                                    the epoch (`lima.store.digests`), checked before a resume
    epoch-NNN/done/rank-R           written by rank R once all its files and its digest file
                                    are uploaded (`lima.train.upload`)
    epoch-NNN/state.json            rank 0: epoch, global step, world size
    epoch-NNN/metrics.jsonl         rank 0: every record so far
    epoch-NNN/hf/                   rank 0, eligible epochs only: the consolidated HF model
    diverged.json                   written when the loss became NaN/inf
    resumed-from.json               the checkpoint (epoch, path) of an earlier run of the key
                                    this run resumed from: its epochs up to that one are
                                    collected from there
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


DIGESTS_DIR = "lima-sha256"
RESUMED_FROM = "resumed-from.json"


def digest_file(rank: int) -> str:
    """Rank `rank`'s digest file inside an epoch folder."""
    return f"{DIGESTS_DIR}/rank-{rank}.json"


def key_folder(key: str) -> str:
    """The folder of every run of a train key, relative to the runs root."""
    return f"train-{key[:16]}"


def run_folder(key: str, run_id: str) -> str:
    """One run's folder, relative to the runs root."""
    return f"{key_folder(key)}/{run_id}"


def new_run_id() -> str:
    """A fresh run id that sorts by start time (the runner's format)."""
    import time
    import uuid

    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def is_run_id(name: str) -> bool:
    """A run folder's name (as opposed to a legacy epoch folder directly under the key)."""
    return bool(name) and tag_epoch(name) is None and "/" not in name and name[0] != "."
