"""The `train` stage: fine-tune the base model on curate's dataset with LIMA's recipe.

Reads `train.jsonl` and `dev.jsonl` of the curate artifact; writes `epoch-N/` (consolidated HF
model + tokenizer with EOT) for each eligible epoch, `metrics.jsonl`, `summary.json` and
`rejected.jsonl` (rows of the input that could not be used, with the reason).
"""

from __future__ import annotations

import json
import logging

from lima.errors import StageError
from lima.results import TrainResult
from lima.stages.base import StageContext
from lima.train import layout
from lima.train.data import read_conversations, subset, truncation_warning

log = logging.getLogger("lima.train")


def run(ctx: StageContext) -> TrainResult:
    from lima.console.train_progress import TrainBeacon
    from lima.console.train_progress import watch as watch_training
    from lima.train.launch import TrainJob, run_training

    train_rows, rejected = read_conversations(ctx.input_file("curate", "train.jsonl"))
    dev_rows, dev_rejected = read_conversations(ctx.input_file("curate", "dev.jsonl"))
    rejected += dev_rejected
    if not train_rows:
        raise StageError("curate's train.jsonl holds no usable conversation")
    wanted = ctx.spec.train.max_examples
    if wanted is not None and wanted > len(train_rows):
        log.warning(
            "train: train.max_examples is %d but curate's train.jsonl holds %d usable "
            "conversations: training on all %d",
            wanted,
            len(train_rows),
            len(train_rows),
        )
    pool = len(train_rows)
    train_rows = subset(train_rows, wanted, ctx.spec.train.seed)
    if rejected:
        (ctx.output_dir / layout.REJECTED).write_text(
            "".join(json.dumps(r) + "\n" for r in rejected)
        )
    workers = ctx.resources.workers
    ctx.progress(note=f"preparing the base model, starting {workers} Ray Train workers")
    beacon = ctx.scratch_dir / "train-progress" / f"{ctx.key[:16]}.json"  # step/loss/tok/s
    job = TrainJob(
        model=ctx.spec.model,
        train=ctx.spec.train,
        resources=ctx.resources,
        settings=ctx.settings,
        storage=ctx.spec.storage,
        train_rows=train_rows,
        dev_rows=dev_rows,
        # One folder per run under the key's folder (layout.run_folder): a retried stage
        # resumes from the newest intact checkpoint of the key's runs; --force does not.
        run_name=layout.key_folder(ctx.key),
        run_id=ctx.run_id,
        resume=not ctx.forced,
        scratch_dir=ctx.scratch_dir,
        output_dir=ctx.output_dir,
        progress=lambda **update: ctx.progress(note=update.get("note")),  # counts: the beacon
        callbacks=(TrainBeacon(str(beacon)),),
    )
    with watch_training(beacon, ctx.progress, ctx.spec.train.epochs):
        summary = run_training(job)
    summary["rejected_rows"] = len(rejected)
    cut = truncation_warning(
        summary["truncated"], summary["train_rows"], ctx.spec.train.context_length
    )
    if cut is not None:
        log.warning("train: %s", cut)
    ctx.progress(note="done")  # counts stay the beacon's steps: epochs here garbled the ETA
    final = summary.get("final") or {}
    return TrainResult(
        epochs=len(summary["epochs"]),
        final_loss=final.get("loss"),
        dev_perplexity=final.get("dev_perplexity"),
        non_padding_fraction=summary["non_padding_fraction"],
        truncated=summary["truncated"],
        rejected_rows=len(rejected),
        train_rows=summary["train_rows"],
        pool_rows=pool,
        models=[e["model"] for e in summary["epochs"] if e["model"]],
        global_batch_size=summary["run"]["global_batch_size"],
        residual_dropout=summary["run"]["residual_dropout"],
    )
