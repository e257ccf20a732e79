"""The per-worker training function run by Ray Train's TorchTrainer (one per data-parallel rank).

Every rank builds the same model, wraps it in a DeepSpeed engine, restores the latest epoch
checkpoint when Ray restarts the group after a failure, then trains epoch by epoch. All ranks run
the same number of forward passes (ZeRO-3 gathers parameters collectively) and share per-step
statistics through all-reduce, so they also stop together on divergence.
"""

from __future__ import annotations

import math
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from lima.train import checkpoint as ckpt
from lima.train.batching import collate, plan_epoch
from lima.train.data import Example
from lima.train.dropout import add_residual_dropout
from lima.train.schedule import linear_lr


def _unpack(files_ref: Any, folder: Path) -> Path:
    import ray

    if not (folder / ".complete").is_file():
        for name, data in ray.get(files_ref).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        (folder / ".complete").write_text("ok\n")
    return folder


def _materialise_base(config: dict[str, Any]) -> tuple[Path, Path]:
    """(model folder, tokenizer folder) on this worker: shipped through the object store by the
    driver (tokenizer always; weights when small), or the base resolved here (HF id, s3://)."""
    from lima.models.load import resolve_base
    from lima.settings import load_settings
    from lima.spec.model import ModelSpec

    base = config["base"]
    root = Path(tempfile.gettempdir()) / "lima-train-bases" / base["digest"]
    tokenizer_dir = _unpack(base["tokenizer_files"], root / "tokenizer")
    if base.get("model_files") is not None:
        return _unpack(base["model_files"], root / "model"), tokenizer_dir
    spec = ModelSpec.model_validate(config["model_spec"])
    return resolve_base(spec, load_settings(), root / "resolved"), tokenizer_dir


def load_model(config: dict[str, Any]):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lima.models.load import add_special_tokens
    from lima.spec.model import ModelSpec

    spec = ModelSpec.model_validate(config["model_spec"])
    model_dir, tokenizer_dir = _materialise_base(config)
    torch.manual_seed(config["seed"])
    tokenizer = AutoTokenizer.from_pretrained(
        tokenizer_dir, trust_remote_code=spec.trust_remote_code
    )
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, trust_remote_code=spec.trust_remote_code
    )
    add_special_tokens(model, tokenizer, spec)
    model.config.use_cache = False
    return model, tokenizer, spec


def _reduce(values: list[float]) -> list[float]:
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


def _to(batch: dict, device: Any) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def _label_tokens(batch: dict) -> int:
    return int((batch["labels"][:, 1:] != -100).sum())


def _maybe_fault(config: dict[str, Any], rank: int, epoch: int, step: int) -> bool:
    """Test hook (`TrainJob.fault = {"trace": path, "events": [...]}`): each event names a rank,
    epoch, step, kind (`kill`: SIGKILL this worker process; `nan`: poison the loss, returns True)
    and a marker file that makes it fire on the first attempt only."""
    for event in (config.get("fault") or {}).get("events", []):
        if (rank, epoch, step) != (event["rank"], event["epoch"], event["step"]):
            continue
        marker = Path(event["marker"])
        if marker.exists():
            continue
        marker.write_text(f"{event['kind']} rank {rank} epoch {epoch} step {step}\n")
        if event["kind"] == "nan":
            return True
        os.kill(os.getpid(), signal.SIGKILL)
    return False


def _trace(config: dict[str, Any], rank: int, line: str) -> None:
    path = (config.get("fault") or {}).get("trace")
    if path and rank == 0:
        with open(path, "a") as handle:
            handle.write(line + "\n")
        with open(path + ".times", "a") as handle:
            handle.write(f"{time.time():.2f} {line}\n")


def _restore(engine: Any, config: dict[str, Any]) -> dict[str, Any] | None:
    """Load the newest complete epoch checkpoint: Ray's latest, or a newer one found in storage."""
    import ray.train

    candidates = []
    restored = ray.train.get_checkpoint()
    if restored:
        candidates.append(
            (
                int(Path(restored.path).name.removeprefix("epoch-")),
                restored.path,
                restored.filesystem,
            )
        )
    fs, run_path = config["run_storage"]
    found = ckpt.latest_complete(fs, run_path)
    if found:
        candidates.append((*found, fs))
    if not candidates:
        return None
    _, path, filesystem = max(candidates, key=lambda c: c[0])
    with tempfile.TemporaryDirectory(prefix="lima-restore-") as folder:
        local = ckpt.download(filesystem, path, Path(folder) / "ckpt")
        state, records = ckpt.read_state(local)
        ckpt.restore(engine, local, state["epoch"])
    return {**state, "records": records}


def dev_perplexity(
    engine: Any, dev: list[Example], config: dict, rank: int, world: int
) -> float | None:
    """Token-weighted perplexity on the dev set, split over ranks (equal passes per rank)."""
    import torch

    if not dev:
        return None
    lengths = [len(e) for e in dev]
    order = sorted(range(len(dev)), key=lambda i: lengths[i])
    micro = config["micro_batch_size"]
    batches = [order[i : i + micro] for i in range(0, len(order), micro)]
    passes = -(-len(batches) // world)
    mine = batches[rank::world]
    engine.eval()
    nll, tokens = 0.0, 0
    with torch.no_grad():
        for index in range(passes):
            real = index < len(mine)
            chosen = mine[index] if real else batches[0]  # dummy pass keeps ZeRO-3 in step
            batch = _to(collate([dev[i] for i in chosen], config["pad_id"]), engine.device)
            loss = engine(**batch).loss
            if real:
                count = _label_tokens(batch)
                nll += float(loss) * count
                tokens += count
    engine.train()
    total_nll, total_tokens = _reduce([nll, float(tokens)])
    return math.exp(min(total_nll / total_tokens, 50.0)) if total_tokens else None


def train_loop(config: dict[str, Any]) -> None:
    """Ray Train entry point. `config` is built by `lima.train.driver.loop_config`."""
    import deepspeed
    import ray.train
    import torch

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    model, tokenizer, spec = load_model(config)
    add_residual_dropout(model, config["residual_dropout"])
    engine, *_ = deepspeed.initialize(
        model=model,
        model_parameters=[p for p in model.parameters() if p.requires_grad],
        config=config["ds_config"],
    )
    train = [Example(*e) for e in ray.get(config["examples"])]
    dev = [Example(*e) for e in ray.get(config["dev_examples"])]
    lengths = [len(e) for e in train]
    plan_args = {
        "micro": config["micro_batch_size"],
        "accumulation": config["accumulation"],
        "workers": world,
        "seed": config["seed"],
        "grouped": config["packing"],
    }
    steps_per_epoch = plan_epoch(lengths, epoch=1, **plan_args).steps
    total_steps = steps_per_epoch * config["epochs"]

    start_epoch, global_step, records = 1, 0, []
    state = _restore(engine, config)
    if state:
        start_epoch, global_step, records = (
            state["epoch"] + 1,
            state["global_step"],
            state["records"],
        )
        _trace(config, rank, f"resume after {state['epoch']}")

    for epoch in range(start_epoch, config["epochs"] + 1):
        _trace(config, rank, f"start {epoch}")
        torch.manual_seed(config["seed"] * 100003 + epoch * 1009 + rank)  # dropout masks
        plan = plan_epoch(lengths, epoch=epoch, **plan_args)
        epoch_start, epoch_stats = time.perf_counter(), [0.0, 0.0, 0.0, 0.0]
        for step in range(plan.steps):
            poison = _maybe_fault(config, rank, epoch, step)
            lr = linear_lr(
                global_step, total_steps, config["lr"], config["final_lr"], config["warmup_steps"]
            )
            for group in engine.optimizer.param_groups:
                group["lr"] = lr
            started = time.perf_counter()
            loss_sum, real, padded = 0.0, 0, 0
            for micro in plan.per_rank[rank][step]:
                batch = collate([train[i] for i in micro], config["pad_id"])
                real += int(batch["attention_mask"].sum())
                padded += batch["attention_mask"].numel()
                loss = engine(**_to(batch, engine.device)).loss
                if poison:
                    loss = loss * float("nan")
                engine.backward(loss)
                engine.step()
                loss_sum += float(loss.detach())
            micro_count = len(plan.per_rank[rank][step])
            loss_sum, micro_total, real_all, padded_all = _reduce(
                [loss_sum, float(micro_count), float(real), float(padded)]
            )
            mean_loss = loss_sum / micro_total
            elapsed = time.perf_counter() - started
            global_step += 1
            if not math.isfinite(mean_loss):
                # Every rank sees the same reduced loss, so all stop here together; rank 0 leaves
                # the reason in the run folder (Ray keeps only metrics attached to checkpoints).
                if rank == 0:
                    ckpt.write_divergence(*config["run_storage"], epoch, global_step, mean_loss)
                return
            records.append(
                {
                    "kind": "step",
                    "epoch": epoch,
                    "step": global_step,
                    "loss": mean_loss,
                    "lr": lr,
                    "tokens": int(real_all),
                    "seconds": elapsed,
                    "tokens_per_s": real_all / elapsed,
                    "non_padding_fraction": real_all / padded_all,
                }
            )
            epoch_stats = [
                a + b
                for a, b in zip(
                    epoch_stats, [loss_sum, micro_total, real_all, padded_all], strict=True
                )
            ]
        perplexity = dev_perplexity(engine, dev, config, rank, world)
        seconds = time.perf_counter() - epoch_start
        record = {
            "kind": "epoch",
            "epoch": epoch,
            "step": global_step,
            "loss": epoch_stats[0] / epoch_stats[1],
            "lr": lr,
            "tokens_per_s": epoch_stats[2] / seconds,
            "non_padding_fraction": epoch_stats[2] / epoch_stats[3],
            "dev_perplexity": perplexity,
            "seconds": seconds,
        }
        records.append(record)
        _report_epoch(engine, tokenizer, spec, config, rank, world, epoch, global_step, records)


def _report_epoch(
    engine: Any,
    tokenizer: Any,
    spec: Any,
    config: dict,
    rank: int,
    world: int,
    epoch: int,
    step: int,
    records: list[dict],
) -> None:
    import ray.train
    from ray.train import Checkpoint

    with tempfile.TemporaryDirectory(prefix=f"lima-ckpt-{rank}-") as folder:
        ckpt.save_shards(engine, Path(folder), epoch, rank)
        if epoch in config["eligible_epochs"]:
            ckpt.export_hf(engine, tokenizer, spec, Path(folder), config["zero_stage"])
        if rank == 0:
            ckpt.write_state(Path(folder), epoch, step, world, records)
        metrics = {k: v for k, v in records[-1].items() if v is not None and k != "kind"}
        ray.train.report(
            metrics,
            checkpoint=Checkpoint.from_directory(folder),
            checkpoint_dir_name=ckpt.tag(epoch),
        )
