"""The per-worker training function (one per data-parallel rank).

Every rank builds the same model, wraps it in a DeepSpeed engine, restores the newest resumable
epoch checkpoint when the group is restarted after a failure, then trains epoch by epoch. All
ranks run the same number of forward passes (ZeRO-3 gathers parameters collectively) and share
per-step statistics (`collectives.StatsReducer`), so they also stop together on divergence.

Determinism: each epoch's batches and its dropout masks are functions of (seed, epoch, rank)
only (the RNG is re-seeded at every epoch start), and a resumed run restarts at an epoch
boundary with the DeepSpeed state of the previous epoch, so a resumed and an uninterrupted run
of the same key produce the same weights.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lima.train import checkpoint as ckpt
from lima.train.batching import EpochPlan, collate, plan_epoch
from lima.train.collectives import StatsReducer
from lima.train.config import LoopConfig
from lima.train.data import Example
from lima.train.schedule import linear_lr
from lima.train.session import ProcessGroupSession, RaySession, Session
from lima.train.upload import CheckpointUploader, CheckpointUploadError


def _to(batch: dict, device: Any) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def _label_tokens(batch: dict) -> int:
    return int((batch["labels"][:, 1:] != -100).sum())


def _restore(engine: Any, config: LoopConfig, session: Session) -> dict[str, Any] | None:
    """Load the newest intact resumable checkpoint: the launcher's, or one found in storage
    (this run's, or an earlier run's of the same key). A checkpoint whose files do not match
    their digests is skipped with a warning naming the file: the previous good epoch is used."""
    storage = config.storage
    candidates = ckpt.resume_candidates(storage.filesystem, storage.path, storage.key_path)
    restored = session.restored()
    if restored and restored[1] not in {path for _, path in candidates}:
        candidates.insert(0, (restored[0], restored[1]))
        candidates.sort(key=lambda c: c[0], reverse=True)
    found = ckpt.first_good(storage.filesystem, candidates)
    if found is None:
        return None
    epoch, path = found
    with tempfile.TemporaryDirectory(prefix="lima-restore-") as folder:
        local = ckpt.download(storage.filesystem, path, Path(folder) / "ckpt")
        state, records = ckpt.read_state(local)
        ckpt.restore(engine, local, state["epoch"])
    if session.rank == 0 and not path.startswith(storage.path + "/"):
        ckpt.write_resumed_from(storage.filesystem, storage.path, epoch, path)
    return {**state, "records": records}


def dev_perplexity(
    engine: Any,
    dev: list[Example],
    micro: int,
    pad_id: int,
    reducer: StatsReducer,
    rank: int,
    world: int,
) -> float | None:
    """Token-weighted perplexity on the dev set, split over ranks (equal passes per rank), in
    eval mode (no dropout); the previous mode is restored."""
    import torch

    if not dev:
        return None
    lengths = [len(e) for e in dev]
    order = sorted(range(len(dev)), key=lambda i: lengths[i])
    batches = [order[i : i + micro] for i in range(0, len(order), micro)]
    passes = -(-len(batches) // world)
    mine = batches[rank::world]
    was_training = engine.training
    engine.eval()
    nll, tokens = 0.0, 0
    try:
        with torch.no_grad():
            for index in range(passes):
                real = index < len(mine)
                chosen = mine[index] if real else batches[0]  # dummy pass keeps ZeRO-3 in step
                batch = _to(collate([dev[i] for i in chosen], pad_id), engine.device)
                loss = engine(**batch).loss
                if real:
                    count = _label_tokens(batch)
                    nll += float(loss) * count
                    tokens += count
    finally:
        engine.train(was_training)
    total_nll, total_tokens = reducer.sum([nll, float(tokens)])
    return math.exp(min(total_nll / total_tokens, 50.0)) if total_tokens else None


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return seed * 100003 + epoch * 1009 + rank


@dataclass
class Run:
    """One rank's training state."""

    config: LoopConfig
    engine: Any
    tokenizer: Any
    session: Session
    train: list[Example]
    dev: list[Example]
    reducer: StatsReducer
    total_steps: int = 0
    global_step: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    uploader: CheckpointUploader = None  # type: ignore[assignment]  # set by build_run

    @property
    def rank(self) -> int:
        return self.session.rank

    @property
    def world(self) -> int:
        return self.session.world

    def plan(self, epoch: int) -> EpochPlan:
        spec = self.config.train
        return plan_epoch(
            [len(e) for e in self.train],
            micro=spec.micro_batch_size,
            accumulation=self.config.accumulation,
            workers=self.world,
            seed=spec.seed,
            epoch=epoch,
            grouped=spec.group_by_length,
        )

    def set_lr(self) -> float:
        spec = self.config.train
        lr = linear_lr(
            self.global_step, self.total_steps, spec.lr, spec.final_lr, spec.warmup_steps
        )
        for group in self.engine.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def step(self, plan: EpochPlan, epoch: int, index: int) -> list[float]:
        """One optimizer step; returns [loss sum, micro-batches, real tokens, padded tokens]
        of the real micro-batches, summed over all ranks."""
        loss_sum, count, real, padded = 0.0, 0, 0, 0
        for micro in plan.per_rank[self.rank][index]:
            batch = collate([self.train[i] for i in (micro or plan.filler)], self.config.pad_id)
            loss = self.engine(**_to(batch, self.engine.device)).loss
            if micro:
                for callback in self.config.callbacks:
                    loss = callback.on_loss(self, epoch, index, loss)
                loss_sum, count = loss_sum + float(loss.detach()), count + 1
                real += int(batch["attention_mask"].sum())
                padded += batch["attention_mask"].numel()
            self.engine.backward(loss * (plan.weight(index) if micro else 0.0))
            self.engine.step()  # DeepSpeed steps the optimizer at the accumulation boundary
        return self.reducer.sum([loss_sum, float(count), float(real), float(padded)])

    def epoch(self, epoch: int) -> bool:
        """Train one epoch and report its checkpoint; False when the loss diverged."""
        import torch

        self.engine.train()
        torch.manual_seed(_epoch_seed(self.config.train.seed, epoch, self.rank))  # dropout masks
        for callback in self.config.callbacks:
            callback.on_epoch_start(self, epoch)
        plan, started, totals, lr = self.plan(epoch), time.perf_counter(), [0.0] * 4, 0.0
        for index in range(plan.steps):
            lr, step_start = self.set_lr(), time.perf_counter()
            stats = self.step(plan, epoch, index)
            self.global_step += 1
            loss = stats[0] / stats[1]
            if not math.isfinite(loss):
                self.diverged(epoch, loss)
                return False
            seconds = time.perf_counter() - step_start
            self.records.append(_step_record(epoch, self.global_step, loss, lr, stats, seconds))
            totals = [a + b for a, b in zip(totals, stats, strict=True)]
        perplexity = dev_perplexity(
            self.engine,
            self.dev,
            self.config.train.micro_batch_size,
            self.config.pad_id,
            self.reducer,
            self.rank,
            self.world,
        )
        seconds = time.perf_counter() - started
        record = {
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
        self.records.append(record)
        self.report(epoch)
        for callback in self.config.callbacks:
            callback.on_epoch_end(self, epoch, record)
        return True

    def report(self, epoch: int) -> None:
        """Write this rank's epoch files (shard; rank 0 also the HF export of an eligible epoch
        and the state) into local scratch, each streamed to storage in the background as soon
        as written (`lima.train.upload`); the previous epoch's uploads are settled first, so
        scratch holds at most one epoch's files of this rank."""
        spec = self.config.train
        self.settle()
        folder = self.uploader.folder(epoch)
        with self.uploader.stream_saves(self.engine, epoch):
            ckpt.save_shards(self.engine, folder, epoch)
        self.uploader.add_folder(epoch)
        if epoch in spec.eligible_epochs:
            ckpt.export_hf(self.engine, self.tokenizer, self.config.model, folder, spec.zero_stage)
        if self.rank == 0:
            ckpt.write_state(folder, epoch, self.global_step, self.world, self.records)
        self.uploader.seal(epoch)  # the rest, then this rank's digests, then its done marker
        metrics = {k: v for k, v in self.records[-1].items() if v is not None and k != "kind"}
        self.session.report(epoch, metrics)

    def settle(self) -> None:
        """Every rank: wait until its queued uploads are stored, check that every rank's were
        (collective: a failure anywhere stops all ranks together), then rank 0 drops full
        states older than `keep_full_states` complete epochs in storage."""
        self.uploader.wait_quietly()
        failed = self.reducer.sum([1.0 if self.uploader.error else 0.0])[0]
        if self.uploader.error is not None:
            raise self.uploader.error
        if failed:
            raise CheckpointUploadError("a checkpoint upload failed on another rank (see its log)")
        if self.rank == 0 and self.uploader.sealed:
            storage = self.config.storage
            keep = self.config.train.keep_full_states
            ckpt.prune_full_states(storage.filesystem, storage.path, keep)

    def diverged(self, epoch: int, loss: float) -> None:
        """Every rank sees the same reduced loss, so all stop together; rank 0 leaves the reason
        in the run folder (Ray keeps only metrics that come with a checkpoint)."""
        if self.rank == 0:
            storage = self.config.storage
            ckpt.write_divergence(storage.filesystem, storage.path, epoch, self.global_step, loss)


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


def build_run(config: LoopConfig, session: Session) -> tuple[Run, Any]:
    """Model, DeepSpeed engine and data of one rank; returns (run, HfDeepSpeedConfig or None)."""
    import deepspeed

    from lima.train.dropout import add_residual_dropout
    from lima.train.worker import load_model

    model, tokenizer, hf_ds_config = load_model(config, session.fetch)
    add_residual_dropout(model, config.residual_dropout)
    engine, *_ = deepspeed.initialize(
        model=model,
        model_parameters=[p for p in model.parameters() if p.requires_grad],
        config=config.ds_config,
    )
    run = Run(
        config,
        engine,
        tokenizer,
        session,
        train=[Example(*e) for e in session.fetch(config.examples)],
        dev=[Example(*e) for e in session.fetch(config.dev_examples)],
        reducer=StatsReducer(),
    )
    run.total_steps = run.plan(1).steps * config.train.epochs
    run.uploader = CheckpointUploader(*config.storage.backend(), rank=session.rank)
    return run, hf_ds_config


def train(config: LoopConfig, session: Session) -> Run:
    """Restore if possible, then train the remaining epochs (stops early on divergence)."""
    run, hf_ds_config = build_run(config, session)
    try:
        start, state = 1, _restore(run.engine, config, session)
        if state:
            start, run.global_step, run.records = (
                state["epoch"] + 1,
                state["global_step"],
                state["records"],
            )
        for callback in config.callbacks:
            callback.on_train_start(run, state["epoch"] if state else None)
        for epoch in range(start, config.train.epochs + 1):
            if not run.epoch(epoch):
                break
        run.settle()  # the last epoch's files are stored (or the upload error is raised)
    finally:
        run.uploader.close()
        if hf_ds_config is not None:
            from transformers.integrations.deepspeed import unset_hf_deepspeed_config

            unset_hf_deepspeed_config()
    return run


def train_loop(config: LoopConfig) -> None:
    """Ray Train entry point. `config` is built by `lima.train.launch.loop_config`."""
    train(config, RaySession())


def train_in_process_group(config: LoopConfig) -> Run:
    """Entry point for a process group started without Ray (torchrun, one process)."""
    import os

    session = ProcessGroupSession(config.storage)
    # DeepSpeed reads the local rank from the launcher's environment; torchrun sets it, a plain
    # process (one rank per machine) does not.
    os.environ.setdefault("LOCAL_RANK", str(session.rank))
    return train(config, session)
