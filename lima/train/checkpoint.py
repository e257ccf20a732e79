"""Epoch checkpoints in the run folder (layout: `lima.train.layout`): save, find, restore,
prune, and the consolidated HF export.

A checkpoint is complete when state.json and every rank's done marker are present (a rank
stores its marker only after every one of its files and its digest file are uploaded:
`lima.train.upload`). It is resumable
when, in addition, its DeepSpeed shards are still there (retention drops old ones) and every
file matches its rank's digest file (`stored_problems`); a resume takes the newest resumable
checkpoint of the key's runs (`resume_candidates`, `first_good`) and falls back to an earlier
epoch, with a warning naming the bad file, when one is damaged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lima.train import layout

log = logging.getLogger("lima.train")


def is_complete(folder: Path, world_size: int | None = None) -> bool:
    state_path = Path(folder) / layout.STATE
    if not state_path.is_file():
        return False
    world = world_size or json.loads(state_path.read_text())["world_size"]
    return all((Path(folder) / layout.done_marker(r)).is_file() for r in range(world))


def stored_epochs(fs, run_path: str) -> list[tuple[int, str]]:
    """(epoch, path) of every epoch folder of a run in storage, oldest first."""
    import pyarrow.fs as pafs

    try:
        infos = fs.get_file_info(pafs.FileSelector(run_path, allow_not_found=True))
    except OSError:
        return []
    epochs = [
        (layout.tag_epoch(i.base_name), i.path)
        for i in infos
        if i.type == pafs.FileType.Directory and layout.tag_epoch(i.base_name) is not None
    ]
    return sorted(epochs)  # type: ignore[arg-type]


def stored_complete(fs, path: str) -> bool:
    """Like `is_complete`, for a checkpoint folder in storage."""
    import pyarrow.fs as pafs

    if fs.get_file_info(f"{path}/{layout.STATE}").type != pafs.FileType.File:
        return False
    with fs.open_input_stream(f"{path}/{layout.STATE}") as stream:
        world = json.loads(stream.read())["world_size"]
    wanted = [f"{path}/{layout.done_marker(r)}" for r in range(world)]
    return all(info.type == pafs.FileType.File for info in fs.get_file_info(wanted))


def _has_shards(fs, path: str) -> bool:
    import pyarrow.fs as pafs

    return fs.get_file_info(f"{path}/{layout.DS_DIR}").type == pafs.FileType.Directory


def latest_complete(fs, run_path: str) -> tuple[int, str] | None:
    """(epoch, path) of the newest resumable epoch checkpoint of a run in storage, if any.

    The ranks stream checkpoints to storage themselves (Ray registers none), so storage is
    the one place that says which epochs are complete.
    """
    for epoch, path in reversed(stored_epochs(fs, run_path)):
        if stored_complete(fs, path) and _has_shards(fs, path):
            return epoch, path
    return None


def prune_full_states(fs, run_path: str, keep: int) -> list[int]:
    """Delete the DeepSpeed shards of complete epochs older than the `keep` newest complete
    ones (their metrics and HF exports stay). Returns the pruned epochs."""
    complete = [
        (epoch, path)
        for epoch, path in stored_epochs(fs, run_path)
        if stored_complete(fs, path) and _has_shards(fs, path)
    ]
    pruned = []
    for epoch, path in complete[:-keep] if len(complete) > keep else []:
        fs.delete_dir(f"{path}/{layout.DS_DIR}")
        pruned.append(epoch)
    return pruned


def download(fs, path: str, dest: Path) -> Path:
    import pyarrow.fs as pafs

    dest.mkdir(parents=True, exist_ok=True)
    pafs.copy_files(
        path, str(dest), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem()
    )
    return dest


def write_divergence(fs, run_path: str, epoch: int, step: int, loss: float) -> None:
    fs.create_dir(run_path, recursive=True)
    with fs.open_output_stream(f"{run_path}/{layout.DIVERGED}") as stream:
        stream.write(json.dumps({"epoch": epoch, "step": step, "loss": str(loss)}).encode())


def read_divergence(fs, run_path: str) -> dict[str, Any] | None:
    import pyarrow.fs as pafs

    path = f"{run_path}/{layout.DIVERGED}"
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as stream:
        return json.loads(stream.read())


def clear_divergence(fs, run_path: str) -> None:
    if read_divergence(fs, run_path) is not None:
        fs.delete_file(f"{run_path}/{layout.DIVERGED}")


def save_shards(engine: Any, folder: Path, epoch: int) -> None:
    """Every rank: its DeepSpeed shard (collective call); `seal` it once all its files are in."""
    engine.save_checkpoint(str(Path(folder) / layout.DS_DIR), tag=layout.tag(epoch))


def seal(folder: Path, rank: int) -> None:
    """Every rank, last: the digests of every file it wrote for the epoch, then its done
    marker (so a checkpoint counts as complete only once its digests exist)."""
    from lima.store.digests import write_digests

    write_digests(Path(folder), layout.digest_file(rank))
    marker = Path(folder) / layout.done_marker(rank)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("ok\n")


def stored_problems(fs, path: str, *, deep: bool = True, shards: bool = True) -> list[str]:
    """What is wrong with the epoch checkpoint `path` in storage (empty: nothing): a missing
    state or digest file, a missing, resized or (deep) changed file. `shards=False` leaves the
    DeepSpeed shards out (for an epoch whose shards retention dropped)."""
    from lima.store.digests import checkpoint_problems

    try:
        with fs.open_input_stream(f"{path}/{layout.STATE}") as stream:
            world = int(json.loads(stream.read())["world_size"])
    except (FileNotFoundError, OSError):
        return [f"{path}/{layout.STATE}: missing"]
    except (ValueError, KeyError, TypeError):
        return [f"{path}/{layout.STATE}: unreadable"]
    names = tuple(layout.digest_file(r) for r in range(world))
    skip = () if shards else (f"{layout.DS_DIR}/",)
    return checkpoint_problems(fs, path, deep=deep, names=names, skip_prefixes=skip)


def run_folders(fs, key_path: str) -> list[tuple[str, str]]:
    """(run id, path) of every run folder of a train key in storage, oldest first."""
    import pyarrow.fs as pafs

    try:
        infos = fs.get_file_info(pafs.FileSelector(key_path, allow_not_found=True))
    except OSError:
        return []
    runs = [
        (i.base_name, i.path)
        for i in infos
        if i.type == pafs.FileType.Directory and layout.is_run_id(i.base_name)
    ]
    return sorted(runs)


def resume_candidates(fs, run_path: str, key_path: str | None = None) -> list[tuple[int, str]]:
    """(epoch, path) of the complete checkpoints with shards this run could resume from,
    best first: newest epoch, this run's own before another run's, newer runs before older.
    `key_path` None: only this run's own checkpoints (a forced run starts afresh)."""
    runs = [(layout.RUNS_DIR, run_path)]  # sorts after every run id: own run first on ties
    if key_path is not None:
        runs += [(name, path) for name, path in run_folders(fs, key_path) if path != run_path]
    found = []
    for order, path in runs:
        for epoch, folder in stored_epochs(fs, path):
            if stored_complete(fs, folder) and _has_shards(fs, folder):
                found.append((epoch, order, folder))
    found.sort(reverse=True)
    return [(epoch, folder) for epoch, _, folder in found]


def first_good(fs, candidates: Iterable[tuple[int, str]]) -> tuple[int, str] | None:
    """The first candidate whose files match their digests; a damaged one is skipped with a
    warning that names the bad file."""
    for epoch, path in candidates:
        problems = stored_problems(fs, path)
        if not problems:
            return epoch, path
        log.warning(
            "checkpoint %s (epoch %d) is damaged, not resuming from it: %s",
            path,
            epoch,
            "; ".join(problems[:3])
            + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""),
        )
    return None


def write_resumed_from(fs, run_path: str, epoch: int, path: str) -> None:
    """Rank 0 of a run that resumed from another run's checkpoint: remember it (collect takes
    the epochs up to it from there)."""
    fs.create_dir(run_path, recursive=True)
    with fs.open_output_stream(f"{run_path}/{layout.RESUMED_FROM}") as stream:
        stream.write(json.dumps({"epoch": epoch, "checkpoint": path}).encode())


def read_resumed_from(fs, run_path: str) -> dict[str, Any] | None:
    import pyarrow.fs as pafs

    path = f"{run_path}/{layout.RESUMED_FROM}"
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as stream:
        try:
            found = json.loads(stream.read())
            return {"epoch": int(found["epoch"]), "checkpoint": str(found["checkpoint"])}
        except (ValueError, KeyError, TypeError):
            log.warning("%s unreadable: ignored", path)
            return None


def run_epochs(fs, run_path: str) -> list[tuple[int, str]]:
    """(epoch, path) of the complete epochs of a run, oldest first, with those inherited from
    the run it resumed from (`resumed-from.json`) up to the epoch it resumed after."""
    chain: list[tuple[str, int | None]] = []  # (run path, last epoch taken from it)
    seen, path, limit = set(), run_path, None
    while path not in seen:
        seen.add(path)
        chain.append((path, limit))
        origin = read_resumed_from(fs, path)
        if origin is None:
            break
        path, limit = origin["checkpoint"].rsplit("/", 1)[0], origin["epoch"]
    epochs: dict[int, str] = {}
    for path, limit in reversed(chain):  # oldest run first, newer runs override
        for epoch, folder in stored_epochs(fs, path):
            if (limit is None or epoch <= limit) and stored_complete(fs, folder):
                epochs[epoch] = folder
    return sorted(epochs.items())


def write_state(folder: Path, epoch: int, step: int, world: int, records: list[dict]) -> None:
    state = {"epoch": epoch, "global_step": step, "world_size": world}
    (Path(folder) / layout.STATE).write_text(json.dumps(state) + "\n")
    lines = "".join(json.dumps(r) + "\n" for r in records)
    (Path(folder) / layout.METRICS).write_text(lines)


def read_state(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    state = json.loads((Path(folder) / layout.STATE).read_text())
    metrics_path = Path(folder) / layout.METRICS
    records = [json.loads(x) for x in metrics_path.read_text().splitlines() if x.strip()]
    return state, records


def restore(engine: Any, folder: Path, epoch: int) -> None:
    engine.load_checkpoint(str(Path(folder) / layout.DS_DIR), tag=layout.tag(epoch))


def full_state_dict(engine: Any, zero_stage: int) -> dict | None:
    """The unpartitioned weights on rank 0 (None elsewhere). Collective under ZeRO-3."""
    if zero_stage == 3:
        return engine._zero3_consolidated_16bit_state_dict()
    import torch.distributed as dist

    if dist.get_rank() != 0:
        return None
    return {k: v.detach().cpu() for k, v in engine.module.state_dict().items()}


def export_hf(engine: Any, tokenizer: Any, model_spec: Any, folder: Path, zero_stage: int) -> None:
    """Consolidated HF folder, rank 0 writes: weights, then the tokenizer with the LIMA chat
    template and EOT as EOS, generation_config.json stopping on EOT and lima_chat.json
    (`lima.models.chat_export`), so the folder is prompted and stopped as trained outside
    lima-run too (`apply_chat_template` + `generate`)."""
    from lima.models.chat_export import save_chat_files

    state = full_state_dict(engine, zero_stage)
    if state is None:
        return
    out = Path(folder) / layout.HF_DIR
    engine.module.save_pretrained(out, state_dict=state)
    save_chat_files(out, tokenizer, model_spec)
