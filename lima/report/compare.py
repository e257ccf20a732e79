"""The sweep's comparison: one row per variant, in the layout of LIMA's Figures 5 and 6.

For each variant: the data it trained on (curate statistics side by side), its mean Likert
helpfulness (1-6) with a 95 % bootstrap CI clustered by prompt (from its own judge stage), and its
pairwise win/tie/loss against the sweep's baseline variant, judged here with the shared judge in
both orders on the prompts both variants answered. The result is an artifact of its own
(`compare`), keyed by the variants' artifacts and the judge, so an unchanged sweep is a cache hit.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lima import dag
from lima.dag import judge_config
from lima.errors import StageError
from lima.results import CompareResult, TrainResult
from lima.settings import Settings
from lima.spec import Experiment
from lima.store import ArtifactStore, InputRef, Manifest, artifact_key, now_iso

if TYPE_CHECKING:
    from lima.sweep import VariantRun

STAGE, VERSION = "compare", "1"
SYSTEM = "lima"


def compare(
    experiment: Experiment, runs: list[VariantRun], settings: Settings, store: ArtifactStore
) -> Manifest:
    """The comparison artifact of a finished sweep (a cache hit when nothing changed)."""
    inputs = {
        (run.variant.name, stage): _required(run, store, stage) for run in runs for stage in INPUTS
    }
    key, config = compare_key(experiment, inputs)
    cached = store.manifest(STAGE, key)
    if cached is not None:
        return cached
    scratch = settings.scratch_dir.resolve()
    scratch.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix="compare-", dir=scratch))
    started_at, started = now_iso(), time.perf_counter()
    try:
        data = collect(experiment, runs, settings, store, scratch)
        write_report(data, out)
        return store.publish(
            STAGE,
            key,
            out,
            code_version=VERSION,
            config=config,
            inputs=[InputRef(f"{v}/{n}", m.key, m.digest, m.uri) for (v, n), m in inputs.items()],
            started_at=started_at,
            summary=CompareResult(variants=[row["variant"] for row in data["rows"]]).model_dump(
                mode="json"
            ),
            duration_s=round(time.perf_counter() - started, 3),
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)


INPUTS = ("curate", "generate", "judge")
"""The artifacts of each variant the comparison reads."""


def compare_key(
    experiment: Experiment, inputs: dict[tuple[str, str], Manifest]
) -> tuple[str, dict[str, Any]]:
    """The comparison's content key and config, from `{(variant, stage): manifest}` of INPUTS.

    Light (no numpy, no judge): the operator computes it to know whether a sweep is finished.
    """
    sweep = experiment.spec.sweep
    config = {
        "judge": judge_config(experiment),
        "baseline": sweep.baseline_name,
        "variants": [variant.model_dump(mode="json") for variant in sweep.variants],
    }
    digests = {f"{variant}/{stage}": m.digest for (variant, stage), m in inputs.items()}
    return artifact_key(STAGE, VERSION, config, digests), config


def _required(run: VariantRun, store: ArtifactStore, stage: str) -> Manifest:
    manifest = run.manifest(store, stage)
    if manifest is None:
        raise StageError(f"variant {run.variant.name}: no {stage} artifact to compare")
    return manifest


# ── collecting the numbers ──────────────────────────────────────────────────────────────────


def collect(
    experiment: Experiment,
    runs: list[VariantRun],
    settings: Settings,
    store: ArtifactStore,
    scratch: Path,
) -> dict[str, Any]:
    from lima.judging import make_judge

    spec = experiment.spec
    baseline_name = spec.sweep.baseline_name
    folders = {
        run.variant.name: {
            stage: _fetch(store, run.manifest(store, stage), scratch)
            for stage in ("curate", "generate", "judge")
        }
        for run in runs
    }
    prompt_set = _shared_prompt_set(folders[baseline_name]["generate"])
    judge = make_judge(spec, settings, store)
    rows = []
    for run in runs:
        name = run.variant.name
        mine = folders[name]
        rows.append(
            {
                "variant": name,
                "description": run.variant.description,
                "baseline": name == baseline_name,
                "data": _data_stats(mine["curate"], run.manifest(store, "train")),
                "likert": likert(
                    mine["judge"], prompt_set, spec.judge.bootstrap_resamples, spec.judge.seed
                ),
                "pairwise": None
                if name == baseline_name
                else pairwise(
                    judge,
                    mine["generate"],
                    folders[baseline_name]["generate"],
                    prompt_set,
                    spec.judge.bootstrap_resamples,
                    spec.judge.seed,
                ),
            }
        )
    return {
        "sweep": experiment.metadata.name,
        "baseline": baseline_name,
        "prompt_set": prompt_set,
        "judge": judge.name,
        "proxy": bool(getattr(judge, "proxy", False)),
        "rows": rows,
    }


def _fetch(store: ArtifactStore, manifest: Manifest | None, scratch: Path) -> Path:
    assert manifest is not None  # checked by compare()
    return store.fetch(manifest, scratch / "inputs" / manifest.stage / manifest.key)


def _shared_prompt_set(generate: Path) -> str:
    """The first prompt set that is the same for every variant (a fixed evaluation file), else
    the first set (a curated split differs between variants whose data differs: only the
    prompts both answered are compared)."""
    summary = json.loads((generate / "generate.json").read_text())
    names = list(summary["sets"])
    fixed = [n for n in names if not str(summary["sets"][n].get("uri", "")).startswith("curated:")]
    return (fixed or names)[0]


def _data_stats(curate: Path, train: Manifest | None = None) -> dict[str, Any]:
    """Curate's statistics; `train` counts what was trained on when `train.max_examples` took a
    subset of the curated pool (then `pool` is set, and tokens and mix describe the pool)."""
    stats = json.loads((curate / "stats.json").read_text())
    totals = stats.get("totals", {})
    data = {
        "train": totals.get("train"),
        "tokens": totals.get("tokens"),
        "mix": {name: row.get("selected") for name, row in stats.get("mix", {}).items()},
        "pool": None,
    }
    result = dag.get("train").read_result(train)  # a TrainResult, or None (an older layout)
    assert result is None or isinstance(result, TrainResult)
    used, pool = (result.train_rows, result.pool_rows) if result is not None else (None, None)
    if used is not None and pool is not None and used < pool:
        data["train"], data["pool"] = used, pool
    return data


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def likert(judged: Path, prompt_set: str, resamples: int, seed: int) -> dict[str, Any]:
    """Mean Likert score of the fine-tuned model with a 95 % CI, resampling prompts."""
    scores: dict[str, list[float]] = {}
    for row in _read_jsonl(judged / "verdicts.jsonl"):
        if (
            row.get("protocol") == "likert"
            and row.get("system") == SYSTEM
            and row.get("set") == prompt_set
            and row.get("valid")
            and isinstance(row.get("value"), int | float)
        ):
            scores.setdefault(str(row["prompt_id"]), []).append(float(row["value"]))
    return mean_with_ci(list(scores.values()), resamples, seed)


def mean_with_ci(clusters: list[list[float]], resamples: int, seed: int) -> dict[str, Any]:
    """Mean over all values, percentile-bootstrap CI resampling whole clusters (prompts)."""
    import numpy as np

    n = sum(len(c) for c in clusters)
    if not n:
        return {"n": 0, "mean": None, "ci": [None, None]}
    sums = np.array([sum(c) for c in clusters])
    counts = np.array([len(c) for c in clusters])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(clusters), size=(resamples, len(clusters)))
    means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"n": n, "mean": float(sums.sum() / n), "ci": [float(low), float(high)]}


def pairwise(
    judge: Any, mine: Path, theirs: Path, prompt_set: str, resamples: int, seed: int
) -> dict[str, Any]:
    """This variant's answers vs the baseline variant's, both orders, on shared prompts."""
    from lima.generation.prompt_sets import PromptRecord
    from lima.judging import items_for, win_tie_loss

    prompts = [
        PromptRecord.from_dict(r) for r in _read_jsonl(mine / "prompts" / f"{prompt_set}.jsonl")
    ]
    answers = {r["id"]: r for r in _read_jsonl(mine / "answers" / prompt_set / f"{SYSTEM}.jsonl")}
    others = {r["id"]: r for r in _read_jsonl(theirs / "answers" / prompt_set / f"{SYSTEM}.jsonl")}
    items = items_for(prompts, answers, others)
    verdicts = judge.judge("pairwise", items) if items else []
    return win_tie_loss(verdicts, resamples, seed)


# ── writing the report ──────────────────────────────────────────────────────────────────────


def write_report(data: dict[str, Any], out: Path) -> None:
    from jinja2 import Environment, PackageLoader, select_autoescape

    figure = _figure(data, out)
    (out / "comparison.json").write_text(json.dumps(data, indent=2) + "\n")
    env = Environment(loader=PackageLoader("lima.report"), autoescape=select_autoescape())
    html = env.get_template("compare.html.j2").render(data=data, figure=figure)
    (out / "compare.html").write_text(html)


def _figure(data: dict[str, Any], out: Path) -> str:
    """Likert means with CIs per variant (Figures 5/6) beside win/tie/loss vs the baseline."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = data["rows"]
    names = [r["variant"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.6 * len(rows) + 1.8))
    means = [r["likert"]["mean"] or 0.0 for r in rows]
    errors = np.array(
        [
            [
                (r["likert"]["mean"] or 0) - (r["likert"]["ci"][0] or r["likert"]["mean"] or 0),
                (r["likert"]["ci"][1] or r["likert"]["mean"] or 0) - (r["likert"]["mean"] or 0),
            ]
            for r in rows
        ]
    ).T
    left.barh(names, means, xerr=errors, color="#4c72b0", capsize=4)
    left.set_xlim(1, 6)
    left.set_xlabel("Likert helpfulness (1-6), 95 % CI")
    left.invert_yaxis()
    start = np.zeros(len(rows))
    for label, colour in (("win", "#55a868"), ("tie", "#c8c8c8"), ("loss", "#c44e52")):
        share = np.array([(r["pairwise"] or {}).get(label) or 0.0 for r in rows])
        right.barh(names, share, left=start, color=colour, label=label)
        start += share
    right.set_xlim(0, 1)
    right.set_xlabel(f"vs baseline variant {data['baseline']!r}")
    right.invert_yaxis()
    right.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "comparison.png", dpi=110)
    plt.close(fig)
    return "comparison.png"
