"""Epoch checkpoints: layout, save (every rank its shard), restore, consolidated HF export.

One Ray Train checkpoint per epoch, `epoch-NNN/`, merged from all ranks:

    ds/epoch-NNN/...           DeepSpeed shards (model + optimizer state of every rank)
    ds/latest                  DeepSpeed's pointer to the tag
    done/rank-R                written by rank R after its shard is saved
    state.json                 rank 0: epoch, global step, world size
    metrics.jsonl              rank 0: every step/epoch record so far (cumulative)
    hf/                        rank 0, eligible epochs only: consolidated HF model + tokenizer

A checkpoint counts as complete only when state.json and every rank's done marker are present
(Ray registers it only after every rank's upload succeeded; the markers let us check it again).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STATE = "state.json"
METRICS = "metrics.jsonl"
HF_DIR = "hf"
DS_DIR = "ds"


def tag(epoch: int) -> str:
    return f"epoch-{epoch:03d}"


def is_complete(folder: Path, world_size: int | None = None) -> bool:
    state_path = Path(folder) / STATE
    if not state_path.is_file():
        return False
    world = world_size or json.loads(state_path.read_text())["world_size"]
    return all((Path(folder) / "done" / f"rank-{r}").is_file() for r in range(world))


def save_shards(engine: Any, folder: Path, epoch: int, rank: int) -> None:
    """Every rank: its DeepSpeed shard and its done marker (collective call)."""
    engine.save_checkpoint(str(Path(folder) / DS_DIR), tag=tag(epoch))
    done = Path(folder) / "done"
    done.mkdir(parents=True, exist_ok=True)
    (done / f"rank-{rank}").write_text("ok\n")


def write_state(folder: Path, epoch: int, step: int, world: int, records: list[dict]) -> None:
    state = {"epoch": epoch, "global_step": step, "world_size": world}
    (Path(folder) / STATE).write_text(json.dumps(state) + "\n")
    lines = "".join(json.dumps(r) + "\n" for r in records)
    (Path(folder) / METRICS).write_text(lines)


def read_state(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    state = json.loads((Path(folder) / STATE).read_text())
    metrics_path = Path(folder) / METRICS
    records = [json.loads(x) for x in metrics_path.read_text().splitlines() if x.strip()]
    return state, records


def restore(engine: Any, folder: Path, epoch: int) -> None:
    engine.load_checkpoint(str(Path(folder) / DS_DIR), tag=tag(epoch))


def full_state_dict(engine: Any, zero_stage: int) -> dict | None:
    """The unpartitioned weights on rank 0 (None elsewhere). Collective under ZeRO-3."""
    if zero_stage == 3:
        return engine._zero3_consolidated_16bit_state_dict()
    import torch.distributed as dist

    if dist.get_rank() != 0:
        return None
    return {k: v.detach().cpu() for k, v in engine.module.state_dict().items()}


def export_hf(engine: Any, tokenizer: Any, model_spec: Any, folder: Path, zero_stage: int) -> None:
    """Consolidated HF folder (weights + tokenizer with EOT + lima_chat.json), rank 0 writes."""
    from lima.models.tiny import write_chat_file

    state = full_state_dict(engine, zero_stage)
    if state is None:
        return
    out = Path(folder) / HF_DIR
    engine.module.save_pretrained(out, state_dict=state)
    tokenizer.save_pretrained(out)
    write_chat_file(out, model_spec)
