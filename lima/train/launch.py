"""Driver side of a training run: prepare data and base, run the TorchTrainer, collect results.

`run_training(job)` is what the train stage, the tests and the benchmark call. Checkpoints go to
the artifact store (`lima.store.pyarrow_filesystem`: MinIO/S3 through pyarrow's S3FileSystem with
the endpoint override, or the local artifacts folder) under
`<prefix>/train-runs/<run name>/<run id>/` (`lima.train.layout`): one folder per run, so two
runs of one key never write the same files; a run resumes from the newest intact checkpoint of
any run of its key (`lima.train.checkpoint.resume_candidates`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lima.errors import StageError
from lima.settings import Settings
from lima.spec.model import ModelSpec
from lima.spec.resources import StageResources, StorageSpec
from lima.spec.train import TrainSpec
from lima.train import checkpoint as ckpt
from lima.train import layout, recipe
from lima.train.batching import micro_batches, non_padding_fraction
from lima.train.callbacks import LoopCallback
from lima.train.config import BaseFiles, LoopConfig, RunStorage
from lima.train.data import EncodeStats, encode_rows, training_texts
from lima.train.ds_config import build_ds_config, gradient_accumulation

log = logging.getLogger("lima.train")

SHIP_LIMIT_BYTES = 2 * 1024**3
"""Bases up to this size travel to the workers through Ray's object store; larger ones are
resolved by each worker itself (HF cache / s3:// download)."""


@dataclass
class TrainJob:
    model: ModelSpec
    train: TrainSpec
    resources: StageResources
    settings: Settings
    storage: StorageSpec
    train_rows: list[dict[str, Any]]
    dev_rows: list[dict[str, Any]]
    run_name: str
    """The key folder under `train-runs/` (`layout.key_folder(key)` for the stage)."""
    scratch_dir: Path
    output_dir: Path
    callbacks: tuple[LoopCallback, ...] = ()
    """Run on every rank (`lima.train.callbacks`)."""
    progress: Any = None
    """The stage's ProgressSink: told each time an epoch checkpoint is complete in storage."""
    run_id: str = ""
    """This run's folder under the key folder (the runner's run id; "" draws a new one)."""
    resume: bool = True
    """Resume from the checkpoints of earlier runs of the key (False: a forced fresh run)."""


def _folder_files(folder: Path, names: list[str] | None = None) -> dict[str, bytes]:
    # Dot files are local bookkeeping (e.g. a preset's `.complete` marker), not model files.
    paths = [p for p in sorted(Path(folder).rglob("*")) if p.is_file() and p.name[0] != "."]
    rel = {str(p.relative_to(folder)): p for p in paths}
    return {name: path.read_bytes() for name, path in rel.items() if names is None or name in names}


TOKENIZER_FILES = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
    "lima_chat.json",
]


def prepare_base(job: TrainJob, ship: Any) -> tuple[Any, Path, BaseFiles]:
    """(tokenizer with chat tokens, local base folder, what the workers get)."""
    from transformers import AutoTokenizer

    from lima.models.load import add_chat_tokens, resolve_base, resolve_tokenizer

    texts = training_texts(job.train_rows) if job.model.base == "tiny" else None
    base_dir = resolve_base(job.model, job.settings, job.scratch_dir, texts)
    tokenizer_dir = resolve_tokenizer(job.model, job.settings, job.scratch_dir, base_dir)
    tokenizer = AutoTokenizer.from_pretrained(
        tokenizer_dir, trust_remote_code=job.model.trust_remote_code
    )
    add_chat_tokens(tokenizer, job.model)
    size = sum(p.stat().st_size for p in Path(base_dir).rglob("*") if p.is_file())
    digest = hashlib.sha256(
        f"{Path(base_dir).resolve()}|{size}|{tokenizer_dir}".encode()
    ).hexdigest()[:16]
    files = BaseFiles(
        digest=digest,
        tokenizer_files=ship(_folder_files(tokenizer_dir, TOKENIZER_FILES)),
        model_files=ship(_folder_files(base_dir)) if size <= SHIP_LIMIT_BYTES else None,
    )
    return tokenizer, base_dir, files


def loop_config(
    job: TrainJob,
    tokenizer: Any,
    base: BaseFiles,
    train_ex: list,
    dev_ex: list,
    storage: RunStorage,
    ship: Any,
) -> LoopConfig:
    """The typed config every worker gets; `ship` puts large values in Ray's object store."""
    workers, use_gpu = job.resources.workers, job.resources.gpus > 0
    return LoopConfig(
        model=job.model,
        train=job.train,
        ds_config=build_ds_config(job.train, workers, use_gpu),
        accumulation=gradient_accumulation(job.train, workers),
        pad_id=int(tokenizer.pad_token_id),
        base=base,
        examples=ship([(e.input_ids, e.labels) for e in train_ex]),
        dev_examples=ship([(e.input_ids, e.labels) for e in dev_ex]),
        storage=storage,
        callbacks=tuple(job.callbacks),
    )


def run_storage(job: TrainJob) -> tuple[Any, str]:
    """(pyarrow filesystem, runs root) in the artifact store; creates the bucket if needed."""
    from lima.store import open_backend, pyarrow_filesystem

    filesystem, base_path = pyarrow_filesystem(job.settings, job.storage)
    backend = open_backend(job.settings, job.storage)
    if hasattr(backend, "ensure_bucket"):
        backend.ensure_bucket()  # pyarrow does not create buckets
    return filesystem, f"{base_path}/{layout.RUNS_DIR}"


def upload_connection(job: TrainJob) -> Any:
    """The `S3Connection` the workers stream checkpoints through (None: the local store)."""
    from lima.store import open_backend

    return getattr(open_backend(job.settings, job.storage), "connection", None)


def make_trainer(job: TrainJob, config: LoopConfig, filesystem: Any, key_path: str):
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from lima.train.loop import train_loop

    resources = {"CPU": job.resources.cpus}
    if job.resources.gpus:
        resources["GPU"] = job.resources.gpus
    return TorchTrainer(
        train_loop,
        train_loop_config=config,
        scaling_config=ScalingConfig(
            num_workers=job.resources.workers,
            use_gpu=job.resources.gpus > 0,
            resources_per_worker=resources,
        ),
        run_config=RunConfig(
            name=job.run_id,  # Ray's run folder is ours: <key folder>/<run id>
            storage_path=key_path,
            storage_filesystem=filesystem,
            failure_config=FailureConfig(max_failures=job.train.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=None),
        ),
    )


@contextmanager
def _epoch_progress(job: TrainJob, filesystem: Any, run_path: str, every_s: float = 1.0):
    """While `trainer.fit()` blocks, report completed epochs from the checkpoints in storage
    (the only progress signal that also survives worker restarts)."""
    if job.progress is None:
        yield
        return
    stop = threading.Event()

    def watch() -> None:
        seen = 0
        while not stop.wait(every_s):
            latest = ckpt.latest_complete(filesystem, run_path)
            if latest and latest[0] != seen:
                seen = latest[0]
                job.progress(
                    completed=seen,
                    total=job.train.epochs,
                    note=f"epoch {seen}/{job.train.epochs} checkpointed",
                )

    thread = threading.Thread(target=watch, name="lima-train-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every_s + 5)


def _fit(trainer: Any):
    try:
        result = trainer.fit()
    except Exception as error:
        raise StageError(f"training failed after retries: {_describe(error)}") from error
    if getattr(result, "error", None):
        raise StageError(f"training failed after retries: {_describe(result.error)}")
    return result


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    cause = error.__cause__ or error.__context__
    summary = text[-1] if text else type(error).__name__
    if cause is not None and str(cause).strip():
        summary += f" (cause: {str(cause).strip().splitlines()[-1]})"
    if any(w in summary.lower() for w in ("s3", "storage", "connection", "upload", "aws")):
        summary = "checkpoint storage unavailable: " + summary
    return summary[:800]


def collect(job: TrainJob, fs: Any, run_path: str) -> list[dict[str, Any]]:
    """Copy consolidated models and metrics of the complete checkpoints into the output folder.

    Reads the run folder in storage (not only Ray's registry) so that checkpoints whose
    registration was lost to a killed worker still count; incomplete ones never do.
    """
    import pyarrow.fs as pafs

    # This run's epochs, and those it inherited from the run it resumed from.
    complete = ckpt.run_epochs(fs, run_path)
    if not complete:
        raise StageError(f"training produced no complete checkpoint under {run_path}")
    epochs = []
    for epoch, path in complete:
        model = None
        if fs.get_file_info(f"{path}/{layout.HF_DIR}").type == pafs.FileType.Directory:
            model = layout.model_dir(epoch)
            ckpt.download(fs, f"{path}/{layout.HF_DIR}", job.output_dir / model)
        epochs.append({"epoch": epoch, "checkpoint": path, "model": model})
    with fs.open_input_stream(f"{complete[-1][1]}/{layout.METRICS}") as stream:
        (job.output_dir / layout.METRICS).write_bytes(stream.read())
    return epochs


def _stats_summary(stats: EncodeStats, dev: EncodeStats, lengths: list[int], job: TrainJob) -> dict:
    grouped = micro_batches(
        lengths, job.train.micro_batch_size, job.train.seed, 1, job.train.group_by_length
    )
    naive = micro_batches(lengths, job.train.micro_batch_size, job.train.seed, 1, False)
    return {
        "train_rows": stats.rows,
        "train_examples": len(lengths),
        "truncated": stats.truncated,
        "dropped": stats.dropped,
        "dev_rows": dev.rows,
        "dev_truncated": dev.truncated,
        "non_padding_fraction": non_padding_fraction(grouped, lengths),
        "non_padding_fraction_unsorted": non_padding_fraction(naive, lengths),
    }


def _raise_if_diverged(filesystem: Any, run_path: str) -> None:
    diverged = ckpt.read_divergence(filesystem, run_path)
    if not diverged:
        return
    good = ckpt.latest_complete(filesystem, run_path)
    last = f"{good[1]} (epoch {good[0]})" if good else "none (no epoch completed)"
    raise StageError(
        f"training diverged (loss {diverged['loss']}) at epoch {diverged['epoch']} step "
        f"{diverged['step']}; last good checkpoint kept at {last}. "
        "Lower spec.train.lr or check the data."
    )


def preflight(job: TrainJob, base_dir: Path | None = None) -> TrainJob:
    """Resolve the recipe for the base's size and check the resources; raises StageError."""
    resolved, summary = recipe.preflight(job.model, job.train, job.resources, base_dir)
    log.info("train recipe: %s", summary)
    gradient_accumulation(resolved, job.resources.workers)  # fail before any work
    return replace(job, train=resolved)


def prepare(job: TrainJob, ship: Any) -> tuple[TrainJob, LoopConfig, dict[str, Any]]:
    """Checks, base, encoded data and the workers' config: (resolved job, config, summary).
    `ship` hands large values to the workers (`ray.put`, or identity in one process group)."""
    job = preflight(job)  # before the base is built or downloaded
    job.output_dir.mkdir(parents=True, exist_ok=True)
    tokenizer, base_dir, base = prepare_base(job, ship)
    job = preflight(job, base_dir)  # exact size from the base's config
    train_ex, stats = encode_rows(job.train_rows, tokenizer, job.model, job.train.context_length)
    dev_ex, dev_stats = encode_rows(job.dev_rows, tokenizer, job.model, job.train.context_length)
    if not train_ex:
        raise StageError("no training example left after encoding (see dropped rows)")
    summary = _stats_summary(stats, dev_stats, [len(e) for e in train_ex], job)
    filesystem, runs_root = run_storage(job)
    job = replace(job, run_id=job.run_id or layout.new_run_id())
    key_path = f"{runs_root}/{job.run_name}"
    storage = RunStorage(
        filesystem,
        f"{key_path}/{job.run_id}",
        key_path=key_path if job.resume else None,
        connection=upload_connection(job),
    )
    ckpt.clear_divergence(filesystem, storage.path)
    config = loop_config(job, tokenizer, base, train_ex, dev_ex, storage, ship)
    return job, config, summary


def finish(job: TrainJob, config: LoopConfig, summary: dict[str, Any]) -> dict[str, Any]:
    """Collect the exported epochs and metrics into the output folder; write summary.json."""
    filesystem, run_path = config.storage.filesystem, config.storage.path
    _raise_if_diverged(filesystem, run_path)
    summary["epochs"] = collect(job, filesystem, run_path)
    metrics = (job.output_dir / layout.METRICS).read_text().splitlines()
    records = [json.loads(x) for x in metrics]
    summary["final"] = next((r for r in reversed(records) if r["kind"] == "epoch"), None)
    summary["run"] = {
        "name": job.run_name,
        "run_id": job.run_id,
        "workers": job.resources.workers,
        "zero_stage": job.train.zero_stage,
        "global_batch_size": job.train.global_batch_size,
        "residual_dropout": job.train.residual_dropout,
    }
    (job.output_dir / layout.SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def run_training(job: TrainJob) -> dict[str, Any]:
    """Run the whole fine-tuning in Ray Train; returns the summary written to `summary.json`."""
    import ray

    job, config, summary = prepare(job, ray.put)
    filesystem, run_path = config.storage.filesystem, config.storage.path
    trainer = make_trainer(job, config, filesystem, run_path.rsplit("/", 1)[0])  # key folder
    with _epoch_progress(job, filesystem, run_path):
        _fit(trainer)
    return finish(job, config, summary)


def run_in_process_group(job: TrainJob) -> dict[str, Any]:
    """The same run in this process's torch.distributed group (or alone), without Ray: for
    torchrun-style launches and machines without Ray (the GPU check). Every rank calls it."""
    from lima.train.loop import train_in_process_group

    job, config, summary = prepare(job, lambda value: value)
    run = train_in_process_group(config)
    if run.rank != 0:  # rank 0 collects the run folder into the output folder
        return summary
    return finish(job, config, summary)
