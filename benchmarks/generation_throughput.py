"""Generation tokens/s: lima-run's batched engine vs plain `model.generate` one prompt at a time.

Same model (the tiny preset, or `--hidden/--layers` for a larger random Llama), same prompts, same
decoding settings (LIMA's: top-p 0.9, temperature 0.7, repetition penalty 1.2), same torch
threads, in one process. Tokens = generated tokens up to and including EOT (the random model
rarely stops, so most answers run to `--max-new-tokens`).

    .venv/bin/python benchmarks/generation_throughput.py [--prompts 32] [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_VICUNA = (
    Path(__file__).resolve().parents[2] / "shared/data/eval_prompts/vicuna_question.jsonl"
)


def prompts(count: int) -> list[str]:
    if SHARED_VICUNA.is_file():
        rows = [json.loads(line) for line in SHARED_VICUNA.read_text().splitlines() if line.strip()]
        texts = [r["turns"][0] for r in rows]
    else:
        texts = [
            f"Explain topic number {i} in a few sentences, with an example." for i in range(80)
        ]
    return [texts[i % len(texts)] for i in range(count)]


def build_model(folder: Path, args: argparse.Namespace) -> Path:
    from lima.models.tiny import build_tiny
    from lima.spec.model import ModelSpec, TinyPreset

    shape = TinyPreset(
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 3,
        num_layers=args.layers,
        num_heads=max(1, args.hidden // 32),
    )
    corpus = prompts(80) * 5
    return build_tiny(ModelSpec(tiny=shape), corpus, folder)


def plain_generate(folder: Path, texts: list[str], args: argparse.Namespace) -> tuple[int, float]:
    """The peer: `model.generate` per prompt with HF's own sampling and repetition penalty."""
    import torch

    from lima.generation.hf_engine import chat_spec
    from lima.models.chat import encode_prompt
    from lima.models.load import load_for_inference

    model, tokenizer, eot = load_for_inference(folder, "cpu")
    spec = chat_spec(folder)
    tokens, started = 0, time.perf_counter()
    for index, text in enumerate(texts):
        ids = torch.tensor([encode_prompt([text], tokenizer, spec)])
        torch.manual_seed(index)
        with torch.inference_mode():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=True,
                top_p=args.top_p,
                temperature=args.temperature,
                repetition_penalty=args.repetition_penalty,
                max_new_tokens=args.max_new_tokens,
                eos_token_id=eot,
                pad_token_id=tokenizer.pad_token_id,
            )
        new = out[0, ids.shape[1] :].tolist()
        tokens += new.index(eot) + 1 if eot in new else len(new)
    return tokens, time.perf_counter() - started


def batched(
    folder: Path, texts: list[str], args: argparse.Namespace, batch: int
) -> tuple[int, float]:
    from lima.generation.config import DecodeConfig
    from lima.generation.hf_engine import HFEngine
    from lima.generation.prompt_sets import PromptRecord

    config = DecodeConfig(
        top_p=args.top_p,
        temperature=args.temperature,
        repetition_penalty=args.repetition_penalty,
        max_new_tokens=args.max_new_tokens,
        batch_size=batch,
    )
    engine = HFEngine(folder, config)
    records = [PromptRecord(f"p{i}", [t]) for i, t in enumerate(texts)]
    started = time.perf_counter()
    answers = engine.answer(records)
    elapsed = time.perf_counter() - started
    return sum(a["turns"][0]["answer_tokens"] for a in answers), elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-sizes", default="8,32")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--repetition-penalty", type=float, default=1.2)
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    texts = prompts(args.prompts)
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_model(Path(tmp) / "model", args)
        runs = {
            "plain model.generate, 1 prompt at a time (peer)": lambda: plain_generate(
                folder, texts, args
            )
        }
        for size in [int(s) for s in args.batch_sizes.split(",")]:
            runs[f"lima HFEngine, batch {size}"] = lambda size=size: batched(
                folder, texts, args, size
            )
        results: dict[str, list[tuple[float, int, float]]] = {name: [] for name in runs}
        batched(folder, texts[:2], args, 2)  # warm-up: imports and first-call costs, for both
        # Interleaved rounds: on a shared machine every run sees the same load conditions.
        for _ in range(args.repeats):
            for name, fn in runs.items():
                tokens, seconds = fn()
                results[name].append((tokens / seconds, tokens, seconds))
    peer = statistics.median(r[0] for r in next(iter(results.values())))
    print(
        f"model: hidden {args.hidden}, layers {args.layers}; prompts {args.prompts}; "
        f"max_new_tokens {args.max_new_tokens}; torch threads {torch.get_num_threads()}; "
        f"cpus {os.cpu_count()}"
    )
    print("| run | tokens | median s | median tokens/s | best tokens/s | x peer |")
    print("|---|---|---|---|---|---|")
    for name, rates in results.items():
        median = statistics.median(r[0] for r in rates)
        print(
            f"| {name} | {rates[0][1]} | {statistics.median(r[2] for r in rates):.2f} | "
            f"{median:.1f} | {max(r[0] for r in rates):.1f} | {median / peer:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
