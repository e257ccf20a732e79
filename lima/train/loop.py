"""The per-worker training function run by Ray Train's TorchTrainer (one per data-parallel rank).

Every rank builds the same model, wraps it in a DeepSpeed engine, restores the latest epoch
checkpoint when Ray restarts the group after a failure, then trains epoch by epoch. All ranks run
the same number of forward passes (ZeRO-3 gathers parameters collectively) and share per-step
statistics through all-reduce, so they also stop together on divergence.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lima.train import checkpoint as ckpt
from lima.train.batching import collate, plan_epoch
from lima.train.data import Example
from lima.train.dropout import add_residual_dropout
from lima.train.faults import maybe_fault, trace
from lima.train.schedule import linear_lr
from lima.train.worker import load_model


def _reduce(values: list[float]) -> list[float]:
    """Sum over ranks (float64 so token counts stay exact)."""
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


def _to(batch: dict, device: Any) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def _label_tokens(batch: dict) -> int:
    return int((batch["labels"][:, 1:] != -100).sum())


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


@dataclass
class Run:
    """One rank's training state."""

    config: dict[str, Any]
    engine: Any
    tokenizer: Any
    spec: Any
    rank: int
    world: int
    train: list[Example]
    dev: list[Example]
    total_steps: int = 0
    global_step: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)

    def plan(self, epoch: int):
        config = self.config
        return plan_epoch(
            [len(e) for e in self.train],
            micro=config["micro_batch_size"],
            accumulation=config["accumulation"],
            workers=self.world,
            seed=config["seed"],
            epoch=epoch,
            grouped=config["packing"],
        )

    def set_lr(self) -> float:
        c = self.config
        lr = linear_lr(
            self.global_step, self.total_steps, c["lr"], c["final_lr"], c["warmup_steps"]
        )
        for group in self.engine.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def step(self, micro_batches: list[list[int]], poison: bool) -> list[float]:
        """One optimizer step; returns [loss sum, micro-batches, real tokens, padded tokens]
        summed over all ranks."""
        loss_sum, real, padded = 0.0, 0, 0
        for micro in micro_batches:
            batch = collate([self.train[i] for i in micro], self.config["pad_id"])
            real += int(batch["attention_mask"].sum())
            padded += batch["attention_mask"].numel()
            loss = self.engine(**_to(batch, self.engine.device)).loss
            if poison:
                loss = loss * float("nan")
            self.engine.backward(loss)
            self.engine.step()  # DeepSpeed steps the optimizer at the accumulation boundary
            loss_sum += float(loss.detach())
        return _reduce([loss_sum, float(len(micro_batches)), float(real), float(padded)])

    def epoch(self, epoch: int) -> bool:
        """Train one epoch and report its checkpoint; False when the loss diverged."""
        import torch

        trace(self.config, self.rank, f"start {epoch}")
        torch.manual_seed(self.config["seed"] * 100003 + epoch * 1009 + self.rank)  # dropout
        plan, started, totals, lr = self.plan(epoch), time.perf_counter(), [0.0] * 4, 0.0
        for index in range(plan.steps):
            poison = maybe_fault(self.config, self.rank, epoch, index)
            lr, step_start = self.set_lr(), time.perf_counter()
            stats = self.step(plan.per_rank[self.rank][index], poison)
            self.global_step += 1
            loss = stats[0] / stats[1]
            if not math.isfinite(loss):
                self.diverged(epoch, loss)
                return False
            self.records.append(
                _step_record(
                    epoch, self.global_step, loss, lr, stats, time.perf_counter() - step_start
                )
            )
            totals = [a + b for a, b in zip(totals, stats, strict=True)]
        perplexity = dev_perplexity(self.engine, self.dev, self.config, self.rank, self.world)
        seconds = time.perf_counter() - started
        self.records.append(
            {
                "kind": "epoch",
                "epoch": epoch,
                "step": self.global_step,
                "loss": totals[0] / totals[1],
                "lr": lr,
                "tokens_per_s": totals[2] / seconds,
                "non_padding_fraction": totals[2] / totals[3],
                "dev_perplexity": perplexity,
                "seconds": seconds,
            }
        )
        _report_epoch(
            self.engine,
            self.tokenizer,
            self.spec,
            self.config,
            self.rank,
            self.world,
            epoch,
            self.global_step,
            self.records,
        )
        return True

    def diverged(self, epoch: int, loss: float) -> None:
        """Every rank sees the same reduced loss, so all stop together; rank 0 leaves the reason
        in the run folder (Ray keeps only metrics that come with a checkpoint)."""
        if self.rank == 0:
            ckpt.write_divergence(*self.config["run_storage"], epoch, self.global_step, loss)


def _step_record(
    epoch: int, step: int, loss: float, lr: float, stats: list[float], seconds: float
) -> dict[str, Any]:
    return {
        "kind": "step",
        "epoch": epoch,
        "step": step,
        "loss": loss,
        "lr": lr,
        "tokens": int(stats[2]),
        "seconds": seconds,
        "tokens_per_s": stats[2] / seconds,
        "non_padding_fraction": stats[2] / stats[3],
    }


def train_loop(config: dict[str, Any]) -> None:
    """Ray Train entry point. `config` is built by `lima.train.driver.loop_config`."""
    import deepspeed
    import ray
    import ray.train

    context = ray.train.get_context()
    model, tokenizer, spec = load_model(config)
    add_residual_dropout(model, config["residual_dropout"])
    engine, *_ = deepspeed.initialize(
        model=model,
        model_parameters=[p for p in model.parameters() if p.requires_grad],
        config=config["ds_config"],
    )
    run = Run(
        config,
        engine,
        tokenizer,
        spec,
        context.get_world_rank(),
        context.get_world_size(),
        train=[Example(*e) for e in ray.get(config["examples"])],
        dev=[Example(*e) for e in ray.get(config["dev_examples"])],
    )
    run.total_steps = run.plan(1).steps * config["epochs"]
    start = 1
    state = _restore(engine, config)
    if state:
        start, run.global_step, run.records = (
            state["epoch"] + 1,
            state["global_step"],
            state["records"],
        )
        trace(config, run.rank, f"resume after {state['epoch']}")
    for epoch in range(start, config["epochs"] + 1):
        if not run.epoch(epoch):
            return


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
