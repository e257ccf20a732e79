"""Run every benchmark script in this folder (what `make bench` does) and print their figures.

Each `benchmarks/*.py` script (helpers start with `_`) runs in its own process, one after the
other, with the modest arguments below (a script not listed runs with its own defaults); its
output streams as it comes. A script that fails or runs past --timeout is reported and the
others still run; the exit status is 1 when any failed.

  .venv/bin/python benchmarks/run_all.py                    # all
  .venv/bin/python benchmarks/run_all.py --only curate_throughput embed_throughput
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Modest settings: enough to show the figures each benchmark exists for, in minutes.
MODEST_ARGS: dict[str, list[str]] = {
    # 200,000 posts (the size the curation goals are stated at), best of 3 interleaved runs (one
    # run on a shared 2-core VM moves by +-20 %), and the driver's memory at 4x that input.
    "curate_throughput": ["--repeat", "3", "--scale-4x"],
    "decontam_throughput": ["--posts", "50000"],
    "embed_throughput": ["--docs", "2000"],
    "generation_throughput": ["--prompts", "16"],
    "judge_throughput": ["--repeat", "1"],
    "operator_latency": ["--experiments", "20"],
    "train_throughput": ["--epochs", "1"],
}
ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_USAGE_STATS_ENABLED": "0",
    "PYTHONUNBUFFERED": "1",
}


def scripts() -> list[Path]:
    return sorted(
        p for p in HERE.glob("*.py") if not p.name.startswith("_") and p.name != Path(__file__).name
    )


def run_one(script: Path, timeout: float) -> tuple[str, float]:
    """(outcome, seconds): the script's output goes straight to ours."""
    command = [sys.executable, str(script), *MODEST_ARGS.get(script.stem, [])]
    print(f"\n===== {script.name} {' '.join(command[2:])}", flush=True)
    started = time.perf_counter()
    try:
        code = subprocess.run(
            command, env={**os.environ, **ENV}, cwd=HERE.parent, timeout=timeout
        ).returncode
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f}s", time.perf_counter() - started
    return ("ok" if code == 0 else f"failed (exit {code})"), time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="+", metavar="NAME", help="script names, without .py")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per script")
    args = parser.parse_args()
    chosen = [s for s in scripts() if not args.only or s.stem in args.only]
    unknown = set(args.only or []) - {s.stem for s in chosen}
    if unknown:
        print(f"no such benchmark: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    outcomes = [(script.stem, *run_one(script, args.timeout)) for script in chosen]
    print("\n===== summary")
    for name, outcome, seconds in outcomes:
        print(f"  {name:24} {outcome:24} {seconds:7.0f}s")
    return 0 if all(outcome == "ok" for _, outcome, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
