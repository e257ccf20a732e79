"""Training benchmark: the train stage's path vs plain PyTorch at equal compute, padding, GPU MFU.

    .venv/bin/python benchmarks/train_throughput.py [--epochs 2] [--rows 160]

1. at equal compute, on the same tiny model, examples and micro-batch plan:
   a. the stage path with 1 Ray Train worker x 1 CPU (DeepSpeed ZeRO-2, via
      `lima.train.launch.run_training`) vs a plain PyTorch loop in one process with 1 thread;
   b. the stage path with 2 workers x 1 CPU vs plain PyTorch DDP under torchrun with 2 processes
      x 1 thread (`benchmarks/_ddp_peer.py`); the goal is >= 0.9x of the peer in both;
2. non-padding fraction of length-grouped micro-batches vs naive pad-to-longest, on the curated
   demo data (the curate stage is run on examples/experiment.yaml) or, when that fails, on a
   length distribution following LIMA's Table 1;
3. on a CUDA machine: model FLOPs utilisation of a 1B-class Llama at context 2048 with ZeRO-3
   (prints "skipped: no GPU" otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DS_ACCELERATOR": "cpu",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_USAGE_STATS_ENABLED": "0",
}.items():
    if _name == "DS_ACCELERATOR" and "--gpu-only" in sys.argv:
        continue  # the GPU part needs DeepSpeed's CUDA accelerator
    os.environ.setdefault(_name, _value)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# LIMA Table 1 (examples, avg input tokens, avg output tokens) of the training sources.
TABLE1 = [
    (200, 117, 523),
    (200, 119, 530),
    (200, 12, 1811),
    (150, 34, 274),
    (50, 236, 92),
    (200, 40, 334),
]
WORDS = [
    "the",
    "model",
    "answer",
    "question",
    "data",
    "train",
    "token",
    "layer",
    "value",
    "report",
    "code",
    "test",
    "result",
    "people",
    "time",
    "water",
    "light",
    "garden",
    "recipe",
    "story",
    "history",
    "system",
]


def curated_rows(work: Path) -> list[dict] | None:
    """Run the curate stage of the demo experiment; None (with the reason) when it cannot."""
    try:
        from lima.runner import RunOptions, run_experiment
        from lima.settings import Settings
        from lima.spec.load import load_experiment

        os.chdir(REPO)
        experiment = load_experiment(REPO / "examples" / "experiment.yaml")
        settings = Settings(work_dir=work, _env_file=None)
        results = run_experiment(experiment, settings, options=RunOptions(only=["curate"]))
        store_files = list((work / "artifacts").rglob("train.jsonl"))
        if not store_files or not results:
            raise RuntimeError("curate produced no train.jsonl")
        rows = [json.loads(x) for x in store_files[0].read_text().splitlines() if x.strip()]
        print(f"data: curated demo data, {len(rows)} training conversations")
        return rows
    except Exception as error:
        print(
            f"data: curate stage unavailable ({type(error).__name__}: {error}); "
            "using LIMA Table 1 lengths"
        )
        return None


def table1_rows(scale: float, count: int | None = None, seed: int = 0) -> list[dict]:
    """Synthetic conversations whose token lengths follow Table 1 (lognormal around the means)."""
    rng = random.Random(seed)
    rows = []
    for n, prompt_len, answer_len in TABLE1:
        for _ in range(n):
            p = max(3, int(rng.lognormvariate(0, 0.6) * prompt_len * scale))
            a = max(3, int(rng.lognormvariate(0, 0.6) * answer_len * scale))
            rows.append(
                {
                    "id": f"t{len(rows)}",
                    "conversations": [
                        " ".join(rng.choice(WORDS) for _ in range(p)),
                        " ".join(rng.choice(WORDS) for _ in range(a)),
                    ],
                }
            )
    rng.shuffle(rows)
    return rows[:count] if count else rows


def padding_figures(rows: list[dict], scratch: Path, context: int) -> None:
    from transformers import AutoTokenizer

    from lima.models.load import resolve_base
    from lima.settings import Settings
    from lima.spec.model import ModelSpec
    from lima.train.batching import micro_batches, non_padding_fraction
    from lima.train.data import encode_rows, training_texts

    spec = ModelSpec()
    folder = resolve_base(
        spec, Settings(work_dir=scratch, _env_file=None), scratch, training_texts(rows)
    )
    tokenizer = AutoTokenizer.from_pretrained(folder)
    examples, stats = encode_rows(rows, tokenizer, spec, context)
    lengths = [len(e) for e in examples]
    print(
        f"\n== non-padding fraction ({len(lengths)} examples, context {context}, "
        f"{stats.truncated} truncated) =="
    )
    print(f"{'micro-batch':>12} {'length-grouped':>15} {'pad-to-longest':>15}")
    for micro in (2, 4, 8):
        grouped = (
            sum(
                non_padding_fraction(micro_batches(lengths, micro, 0, e), lengths)
                for e in range(1, 4)
            )
            / 3
        )
        naive = (
            sum(
                non_padding_fraction(micro_batches(lengths, micro, 0, e, grouped=False), lengths)
                for e in range(1, 4)
            )
            / 3
        )
        print(f"{micro:>12} {grouped:>15.1%} {naive:>15.1%}")


def steady_tokens_per_s(records: list[dict]) -> float:
    steps = [r for r in records if r.get("kind", "step") == "step"][1:]  # first step warms up
    return sum(r["tokens"] for r in steps) / sum(r["seconds"] for r in steps)


def stage_path(rows: list[dict], args: argparse.Namespace, tmp: Path, workers: int):
    import ray

    from lima.settings import Settings
    from lima.spec.model import ModelSpec, TinyPreset
    from lima.spec.resources import StageResources, StorageSpec
    from lima.spec.train import TrainSpec
    from lima.train.launch import TrainJob, run_training

    if not ray.is_initialized():  # the curate run may have started it
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    model = ModelSpec(
        tiny=TinyPreset(
            hidden_size=128, intermediate_size=344, num_layers=4, num_heads=4, vocab_size=2048
        )
    )
    train = TrainSpec(
        epochs=args.epochs,
        eligible_epochs=[args.epochs],
        global_batch_size=16,
        micro_batch_size=4,
        context_length=args.context,
        lr=1e-3,
        final_lr=1e-4,
        residual_dropout=0.2,
        zero_stage=2,
        max_failures=0,
    )
    job = TrainJob(
        model=model,
        train=train,
        resources=StageResources(workers=workers, cpus=1, memory="2Gi"),
        settings=Settings(work_dir=tmp / "work", _env_file=None),
        storage=StorageSpec(),
        train_rows=rows,
        dev_rows=rows[:8],
        run_name=f"bench-{workers}",
        scratch_dir=tmp / "scratch",
        output_dir=tmp / f"out-{workers}",
    )
    started = time.perf_counter()
    summary = run_training(job)
    wall = time.perf_counter() - started
    records = [json.loads(x) for x in (job.output_dir / "metrics.jsonl").read_text().splitlines()]
    return job, summary, records, wall


def plain_loop(job, threads: int) -> tuple[float, float, float]:
    """The same training in one process with torch's AdamW.

    Returns (steady tokens/s, end-to-end tokens/s, last loss).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lima.models.load import resolve_base
    from lima.train.batching import collate, plan_epoch
    from lima.train.data import encode_rows, training_texts
    from lima.train.dropout import add_residual_dropout
    from lima.train.schedule import linear_lr

    torch.set_num_threads(threads)
    started = time.perf_counter()
    folder = resolve_base(job.model, job.settings, job.scratch_dir, training_texts(job.train_rows))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    add_residual_dropout(model, job.train.residual_dropout)
    model.train()
    spec = job.train
    examples, _ = encode_rows(job.train_rows, tokenizer, job.model, spec.context_length)
    lengths = [len(e) for e in examples]
    accumulation = spec.global_batch_size // spec.micro_batch_size
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=spec.lr,
        betas=(spec.adam_beta1, spec.adam_beta2),
        weight_decay=spec.weight_decay,
    )
    total_steps = (
        plan_epoch(
            lengths,
            micro=spec.micro_batch_size,
            accumulation=accumulation,
            workers=1,
            seed=spec.seed,
            epoch=1,
        ).steps
        * spec.epochs
    )
    records, step, loss_value = [], 0, float("nan")
    for epoch in range(1, spec.epochs + 1):
        plan = plan_epoch(
            lengths,
            micro=spec.micro_batch_size,
            accumulation=accumulation,
            workers=1,
            seed=spec.seed,
            epoch=epoch,
        )
        for index, micro_batches in enumerate(plan.per_rank[0]):
            t0, tokens = time.perf_counter(), 0
            for group in optimizer.param_groups:
                group["lr"] = linear_lr(step, total_steps, spec.lr, spec.final_lr)
            for micro in micro_batches:
                chosen = micro or plan.filler
                batch = collate([examples[i] for i in chosen], int(tokenizer.pad_token_id))
                weight = plan.weight(index) if micro else 0.0
                loss = model(**batch).loss
                (loss * weight / len(micro_batches)).backward()
                if micro:
                    tokens += int(batch["attention_mask"].sum())
                    loss_value = float(loss.detach())
            torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            records.append({"tokens": tokens, "seconds": time.perf_counter() - t0})
    wall = time.perf_counter() - started
    return steady_tokens_per_s(records), sum(r["tokens"] for r in records) / wall, loss_value


def ddp_peer(job, workers: int, tmp: Path) -> tuple[float, float]:
    """Plain DDP under torchrun (`_ddp_peer.py`) on the same plan; (steady, end-to-end) tok/s."""
    import subprocess

    from transformers import AutoTokenizer

    from lima.models.load import resolve_base
    from lima.train.data import encode_rows, training_texts

    spec = job.train
    folder = resolve_base(job.model, job.settings, job.scratch_dir, training_texts(job.train_rows))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    examples, _ = encode_rows(job.train_rows, tokenizer, job.model, spec.context_length)
    config = {
        "base": str(folder),
        "examples": [[e.input_ids, e.labels] for e in examples],
        "micro": spec.micro_batch_size,
        "accumulation": spec.global_batch_size // (spec.micro_batch_size * workers),
        "epochs": spec.epochs,
        "seed": spec.seed,
        "pad_id": int(tokenizer.pad_token_id),
        "lr": spec.lr,
        "final_lr": spec.final_lr,
        "betas": [spec.adam_beta1, spec.adam_beta2],
        "weight_decay": spec.weight_decay,
        "grad_clip": spec.grad_clip,
        "dropout": spec.residual_dropout,
        "out": str(tmp / "ddp.json"),
    }
    (tmp / "ddp-config.json").write_text(json.dumps(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={workers}"]
    started = time.perf_counter()
    script = str(REPO / "benchmarks" / "_ddp_peer.py")
    subprocess.run([*command, script, str(tmp / "ddp-config.json")], env=env, check=True)
    wall = time.perf_counter() - started
    records = json.loads((tmp / "ddp.json").read_text())["records"]
    return steady_tokens_per_s(records), sum(r["tokens"] for r in records) / wall


def gpu_mfu_subprocess() -> None:
    """Run `gpu_mfu` in a fresh process without DS_ACCELERATOR=cpu (set for the CPU parts)."""
    import subprocess

    import torch

    print("\n== GPU model FLOPs utilisation (1B-class Llama, context 2048, ZeRO-3) ==", flush=True)
    if not torch.cuda.is_available():
        print("skipped: no GPU")
        return
    env = {k: v for k, v in os.environ.items() if k != "DS_ACCELERATOR"}
    subprocess.run([sys.executable, __file__, "--gpu-only"], env=env, check=True)


def gpu_mfu() -> None:
    """1B-class Llama (Llama-3.2-1B shape), context 2048, ZeRO-3, bf16, one process per GPU."""
    import torch

    if not torch.cuda.is_available():
        print("skipped: no GPU")
        return
    import deepspeed
    from transformers import LlamaConfig, LlamaForCausalLM

    from lima.spec.train import TrainSpec
    from lima.train.dropout import add_residual_dropout
    from lima.train.ds_config import build_ds_config

    for name, value in {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29511",
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
    }.items():
        os.environ.setdefault(name, value)
    deepspeed.init_distributed(dist_backend="nccl")
    seq, micro, steps = 2048, 8, 12
    config = LlamaConfig(
        vocab_size=128256,
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=seq,
        tie_word_embeddings=True,
        attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(config)
    model.gradient_checkpointing_enable()
    add_residual_dropout(model, 0.2)
    params = sum(p.numel() for p in model.parameters())
    train = TrainSpec(global_batch_size=micro, micro_batch_size=micro, zero_stage=3)
    ds = build_ds_config(train, workers=1, use_gpu=True)
    engine, *_ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=ds)
    ids = torch.randint(0, config.vocab_size, (micro, seq), device=engine.device)
    timings = []
    for step in range(steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = engine(input_ids=ids, labels=ids).loss
        engine.backward(loss)
        engine.step()
        torch.cuda.synchronize()
        if step >= 2:
            timings.append(time.perf_counter() - t0)
    tokens_per_s = micro * seq / (sum(timings) / len(timings))
    layers, hidden = config.num_hidden_layers, config.hidden_size
    flops_per_token = (
        6 * params + 12 * layers * hidden * seq
    )  # weights + attention (PaLM appendix B)
    peak = 989e12  # H100/H200 SXM dense bf16
    print(
        f"device {torch.cuda.get_device_name()}  params {params / 1e9:.2f}B  "
        f"tokens/s {tokens_per_s:,.0f}  MFU {flops_per_token * tokens_per_s / peak:.1%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rows", type=int, default=160)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--gpu-only", action="store_true", help="only the GPU MFU part")
    args = parser.parse_args()
    if args.gpu_only:
        gpu_mfu()
        return
    tmp = Path(tempfile.mkdtemp(prefix="lima-train-bench-"))
    rows = curated_rows(tmp / "curate") or table1_rows(scale=0.25)
    padding_figures(rows, tmp / "pad", args.context)
    train_rows = rows[: args.rows]

    rows_out = []
    for workers in (1, 2):
        job, summary, records, wall = stage_path(train_rows, args, tmp, workers)
        tokens = sum(r["tokens"] for r in records if r["kind"] == "step")
        stage = (steady_tokens_per_s(records), tokens / wall, summary["final"]["loss"])
        if workers == 1:
            steady, e2e, loss = plain_loop(job, threads=1)
            peer = ("plain PyTorch, 1 process x 1 thread", steady, e2e, loss)
        else:
            steady, e2e = ddp_peer(job, workers, tmp)
            peer = ("torchrun DDP, 2 processes x 1 thread", steady, e2e, float("nan"))
        rows_out.append((f"stage, {workers} Ray worker(s) x 1 CPU", *stage, *peer))
    import ray

    ray.shutdown()
    print(
        f"\n== throughput at equal compute ({len(train_rows)} conversations, {args.epochs} epochs,"
        " tiny Llama 128x4, micro 4, global 16) =="
    )
    print(f"{'':38} {'steady tok/s':>13} {'end-to-end tok/s':>17} {'final loss':>11}")
    for stage_name, s_steady, s_e2e, s_loss, peer_name, p_steady, p_e2e, p_loss in rows_out:
        print(f"{stage_name:38} {s_steady:>13,.0f} {s_e2e:>17,.0f} {s_loss:>11.3f}")
        print(f"{peer_name:38} {p_steady:>13,.0f} {p_e2e:>17,.0f} {p_loss:>11.3f}")
        print(f"{'  ratio stage/peer (steady)':38} {s_steady / p_steady:>12.2f}x  (goal >= 0.9x)")
    gpu_mfu_subprocess()


if __name__ == "__main__":
    main()
