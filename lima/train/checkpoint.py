"""Epoch checkpoints in the run folder (layout: `lima.train.layout`): save, find, restore,
prune, and the consolidated HF export.

A checkpoint is complete when state.json and every rank's done marker are present (Ray registers
it only after every rank's upload succeeded; the markers let us check it again). It is resumable
when, in addition, its DeepSpeed shards are still there (retention drops old ones).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lima.train import layout


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

    Ray registers a reported checkpoint when its controller next polls the workers; a worker
    killed right after an upload can lose that registration although every shard is stored.
    Scanning storage for complete checkpoints closes that gap.
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


def save_shards(engine: Any, folder: Path, epoch: int, rank: int) -> None:
    """Every rank: its DeepSpeed shard and its done marker (collective call)."""
    engine.save_checkpoint(str(Path(folder) / layout.DS_DIR), tag=layout.tag(epoch))
    marker = Path(folder) / layout.done_marker(rank)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("ok\n")


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
