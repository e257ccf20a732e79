"""Cache re-run benchmark: run an experiment twice with the real runner; the second run of an
unchanged experiment should be all cache hits and take < 5% of the first run's time.

    .venv/bin/python benchmarks/cache_rerun.py                      # registered stages + demo
    .venv/bin/python benchmarks/cache_rerun.py --synthetic          # labelled synthetic pipeline

With the real stage graph (lima.dag.GRAPH) and examples/experiment.yaml it measures the real
LIMA pipeline. When stages are not registered yet (or with --synthetic) it uses a SYNTHETIC
pipeline defined in this file only (stages that hash, sort and compute on generated data), and
says so in its output. Each invocation uses a fresh work dir (and a fresh store prefix), so the
first run computes everything.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
for name, value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DS_ACCELERATOR": "cpu",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_USAGE_STATS_ENABLED": "0",
}.items():
    os.environ.setdefault(name, value)

from lima import dag  # noqa: E402
from lima.runner import StageRun, run_experiment  # noqa: E402
from lima.settings import load_settings  # noqa: E402
from lima.spec import Experiment  # noqa: E402
from lima.spec.load import load_experiment  # noqa: E402
from lima.stages import Stage, StageContext  # noqa: E402

GOAL = 0.05


# -- the synthetic pipeline (benchmark only; never registered) -----------------------------------


def _synthetic_work(ctx: StageContext, seconds: float, megabytes: int) -> dict[str, object]:
    """Real CPU and I/O work: hash chained blocks for `seconds`, write `megabytes` of output."""
    upstream = b"".join(
        (ctx.input_dir(name) / "data.bin").read_bytes()[:4096] for name in sorted(ctx.inputs)
    )
    digest, rounds, deadline = hashlib.sha256(upstream).digest(), 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(2000):
            digest = hashlib.sha256(digest).digest()
        rounds += 2000
    with (ctx.output_dir / "data.bin").open("wb") as out:
        for i in range(megabytes):
            out.write(hashlib.sha256(digest + i.to_bytes(4, "big")).digest() * (1 << 15))
    (ctx.output_dir / "summary.json").write_text(json.dumps({"rounds": rounds}))
    return {"rounds": rounds}


def _synthetic(name: str, inputs: tuple[str, ...], seconds: float, megabytes: int) -> Stage:
    return Stage(
        name=f"synthetic-{name}",
        version="1",
        inputs=tuple(f"synthetic-{i}" for i in inputs),
        config=lambda exp: {"experiment": exp.metadata.name, "seconds": seconds},
        run=lambda ctx: _synthetic_work(ctx, seconds, megabytes),
        description=f"SYNTHETIC benchmark stage {name}",
    )


def synthetic_pipeline() -> list[Stage]:
    return [
        _synthetic("curate", (), 2.0, 8),
        _synthetic("train", ("curate",), 6.0, 32),
        _synthetic("select", ("curate", "train"), 1.0, 16),
        _synthetic("generate", ("train", "select"), 3.0, 4),
        _synthetic("judge", ("generate",), 2.0, 1),
        _synthetic("report", ("curate", "train", "generate", "judge"), 0.5, 1),
    ]


# -- measuring -------------------------------------------------------------------------------------


def choose_stages(force_synthetic: bool) -> tuple[list[Stage] | None, str]:
    if force_synthetic:
        return synthetic_pipeline(), "SYNTHETIC pipeline (--synthetic)"
    return None, f"the real stages: {' -> '.join(dag.NAMES)}"


def fresh_experiment(path: Path) -> Experiment:
    experiment = load_experiment(path)
    storage = experiment.spec.storage.model_copy(
        update={"prefix": f"bench-cache-{uuid.uuid4().hex[:8]}"}
    )
    spec = experiment.spec.model_copy(update={"storage": storage})
    return experiment.model_copy(update={"spec": spec})


def timed_run(experiment: Experiment, settings, stages) -> tuple[float, list[StageRun]]:
    started = time.perf_counter()
    results = run_experiment(experiment, settings, stages=stages)
    return time.perf_counter() - started, results


def report(label: str, first: tuple[float, list], second: tuple[float, list]) -> int:
    (t1, r1), (t2, r2) = first, second
    print(f"\npipeline: {label}")
    print(f"{'stage':<22} {'run 1':>10} {'s':>9}   {'run 2':>10} {'s':>9}")
    for a, b in zip(r1, r2, strict=True):
        one, two = f"{a.status:>10} {a.duration_s:>9.3f}", f"{b.status:>10} {b.duration_s:>9.3f}"
        print(f"{a.stage:<22} {one}   {two}")
        if a.status == "failed":
            print(f"  run 1 failure: {a.message[:300]}")
    fraction = t2 / t1 if t1 else float("nan")
    hits = sum(r.cache_hit for r in r2)
    print(f"\nfirst run : {t1:9.3f} s")
    print(f"second run: {t2:9.3f} s  ({hits}/{len(r2)} cache hits)")
    verdict = "meets" if fraction < GOAL else "MISSES"
    print(f"fraction  : {fraction:.4%}  ({verdict} the < {GOAL:.0%} goal)")
    complete = all(r.status == "done" for r in r1) and hits == len(r2)
    if not complete:
        print("NOTE: the first run did not complete every stage; the fraction covers what ran.")
    return 0 if complete and fraction < GOAL else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", type=Path, default=REPO / "examples" / "experiment.yaml")
    parser.add_argument("--synthetic", action="store_true", help="use the synthetic pipeline")
    parser.add_argument("--work-dir", type=Path, help="default: a fresh temporary folder")
    args = parser.parse_args()

    stages, label = choose_stages(args.synthetic)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="lima-bench-cache-"))
    settings = load_settings().model_copy(update={"work_dir": work_dir})
    experiment = fresh_experiment(args.experiment)
    print(f"{label}\nexperiment: {args.experiment} (store prefix {experiment.spec.storage.prefix})")
    print(f"store: {settings.describe()}")
    os.chdir(REPO)  # the demo's source URIs are relative to the repository
    first = timed_run(experiment, settings, stages)
    second = timed_run(experiment, settings, stages)
    return report(label, first, second)


if __name__ == "__main__":
    sys.exit(main())
