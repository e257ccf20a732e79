"""The stage graph of a LIMA experiment: the one place that knows the stages and walks them.

    curate ──► train ──► select ──► generate ──► judge ──► report
       └─────────┴──────────┴──────────┴────────────────────┘ (report reads them all)

Each `Stage` declares its name, code version, inputs, the slice of the spec that determines its
output (`config`, which enters the artifact key), the model of the result it reports, and where
its `run` function lives ("module:function", imported only when the stage runs). Importing this
module therefore imports no ML library: the operator, `lima validate` and `lima plan` use the
graph without torch, Ray or DeepSpeed installed.

`plan()` is the single walk of the graph: the local runner, single-stage runs (RayJobs) and the
operator all ask it which stages are cached, which can run, and under which key.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from lima.errors import LimaError
from lima.generation.config import DecodeConfig
from lima.results import (
    CurateResult,
    GenerateResult,
    JudgeResult,
    ReportResult,
    SelectResult,
    StageResult,
    TrainResult,
)
from lima.spec import Experiment
from lima.store.artifacts import Manifest, artifact_key

if TYPE_CHECKING:
    from lima.stages.base import StageContext

log = logging.getLogger("lima.dag")

RunFunction = Callable[["StageContext"], StageResult | dict[str, Any] | None]


@dataclass(frozen=True)
class Stage:
    """A node of the experiment graph."""

    name: str
    version: str
    """Bump when the code changes what the stage outputs: it is part of the artifact key."""

    inputs: tuple[str, ...]
    """Names of the stages whose artifacts this stage reads."""

    config: Callable[[Experiment], Any]
    """The part of the spec that determines the output (JSON-serialisable)."""

    run: str | RunFunction
    """"module:function", imported on first use (or the function itself, for tests)."""

    description: str = ""
    result: type[StageResult] | None = None
    """The model of what `run` returns; None only for test stages (a plain dict)."""

    def key(self, experiment: Experiment, inputs: Mapping[str, Manifest]) -> str:
        """Content key: stage name, code version, config and the inputs' digests."""
        digests = {name: manifest.digest for name, manifest in inputs.items()}
        return artifact_key(self.name, self.version, self.config(experiment), digests)

    def load_run(self) -> RunFunction:
        if callable(self.run):
            return self.run
        module, _, function = self.run.partition(":")
        return getattr(importlib.import_module(module), function)

    def check_result(self, returned: StageResult | dict[str, Any] | None) -> dict[str, Any]:
        """What `run` returned, validated against `result`, as the manifest's JSON summary."""
        if self.result is None:
            return dict(returned or {})
        if isinstance(returned, self.result):
            return returned.model_dump(mode="json")
        raise LimaError(
            f"stage {self.name!r} returned {type(returned).__name__}, "
            f"expected {self.result.__name__}"
        )

    def read_result(self, manifest: Manifest | None) -> StageResult | None:
        """The typed result stored in `manifest` (None if absent or from an older layout)."""
        if manifest is None or self.result is None or manifest.summary is None:
            return None
        try:
            return self.result.model_validate(manifest.summary)
        except ValidationError as error:
            log.warning("%s: summary of %s unreadable: %s", self.name, manifest.key, error)
            return None


# ── what enters each stage's key ───────────────────────────────────────────────────────────

TRANSPORT = frozenset({"concurrency", "timeout_s", "max_retries", "backoff_s"})
"""Judge settings that change how verdicts are fetched, not what they are: not part of keys."""


def decode_config(experiment: Experiment) -> dict[str, Any]:
    """The decoding part of the spec that determines answers."""
    generate = experiment.spec.generate
    return {**DecodeConfig.from_spec(generate).to_dict(), "engine": generate.engine}


def judge_config(
    experiment: Experiment, exclude: set[str] | frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The judge settings that determine verdicts (endpoint URL and key are runtime settings)."""
    config = experiment.spec.judge.model_dump(mode="json", exclude=TRANSPORT | set(exclude))
    if "baselines" in config:
        config["baselines"] = baselines_config(experiment)
    return config


def baselines_config(experiment: Experiment) -> list[dict[str, Any]]:
    """The baselines as they enter keys: a supplied answers file by its name and content."""
    found = []
    for baseline in experiment.spec.judge.baselines:
        entry = baseline.model_dump(mode="json")
        if baseline.answers:
            entry["answers"] = portable(baseline.answers)
            entry["answers_content"] = local_digest(baseline.answers)
        found.append(entry)
    return found


def portable(uri: str) -> str:
    """A local path as it enters a key: its last part only (the glob), so that the same files in
    another checkout or on another machine give the same key; their content is keyed apart."""
    if uri.startswith(("s3://", "curated:", "http://", "https://")):
        return uri
    return "local:" + Path(uri.removeprefix("file://")).name


def local_digest(uri: str) -> str | None:
    """What a single file (a prompt set, a baseline's answers) holds now: sha256 of a local file,
    size and ETag of an s3:// object (the store's `fingerprint_uri`). Changing it changes the
    keys that read it."""
    if uri.startswith("s3://"):
        from lima.settings import load_settings
        from lima.store.sources import fingerprint_uri

        found = fingerprint_uri(uri, load_settings())
        return ";".join(f"{f['file']}:{f['size']}:{f['content']}" for f in found)
    path = Path(uri.removeprefix("file://"))
    if uri.startswith("curated:") or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def curate_config(experiment: Experiment) -> dict[str, Any]:
    # Token counts use a fixed tokenizer (lima.curate.tokens), not the model's, so the model
    # section does not enter the key. The data section includes the evaluation sets training is
    # decontaminated against (the generate stage's prompt sets too), with their files' digests.
    from lima.curate.evalsets import effective_data, fingerprints
    from lima.store.sources import fingerprint_sources

    data = effective_data(experiment.spec)
    dumped = data.model_dump(mode="json")
    for entry in [*dumped["sources"], *dumped["decontamination"]["extra_sets"]]:
        entry["uri"] = portable(entry["uri"])  # content is keyed below, not the checkout's path
    return {
        "data": dumped,
        "tokenizer": "minilm-wordpiece",
        "eval_set_digests": fingerprints(data),
        # What the source URIs hold now (size + sha256, or S3 ETag, per file): a file changed
        # at the same URI changes the key, so curate runs again instead of serving stale data.
        "source_files": fingerprint_sources(data.sources),
    }


def train_config(experiment: Experiment) -> dict[str, Any]:
    spec = experiment.spec
    resources = spec.resources.train
    train = spec.train.model_dump(mode="json")
    if train["max_examples"] is None:  # unset trains on every row, as before it existed:
        del train["max_examples"]  # the keys of existing train artifacts stay valid
    # Workers and GPUs change the batch split and numerics, so they are part of the key.
    return {
        "model": spec.model.model_dump(mode="json"),
        "train": train,
        "workers": resources.workers,
        "gpus": resources.gpus,
    }


def select_config(experiment: Experiment) -> dict[str, Any]:
    return {
        "decode": decode_config(experiment),
        "judge": judge_config(experiment, {"protocols", "baselines"}),
        "eligible_epochs": sorted(set(experiment.spec.train.eligible_epochs)),
    }


def generate_config(experiment: Experiment) -> dict[str, Any]:
    spec = experiment.spec
    prompt_sets = []
    for prompt_set in spec.generate.prompt_sets:
        entry = prompt_set.model_dump(mode="json")
        entry["uri"], entry["content"] = portable(prompt_set.uri), local_digest(prompt_set.uri)
        prompt_sets.append(entry)
    return {
        "decode": decode_config(experiment),
        "prompt_sets": prompt_sets,
        "baselines": baselines_config(experiment),
        "model": spec.model.model_dump(mode="json"),
    }


SELECTION_ONLY = frozenset({"selection_prompts", "selection_min_valid", "selection_fallback"})
"""Judge settings only the select stage uses: changing them must not re-judge the test sets."""


def judge_stage_config(experiment: Experiment) -> dict[str, Any]:
    return {"judge": judge_config(experiment, SELECTION_ONLY)}


def report_config(experiment: Experiment) -> dict[str, Any]:
    return {"experiment": experiment.metadata.name}


# ── the graph ──────────────────────────────────────────────────────────────────────────────

GRAPH: tuple[Stage, ...] = (
    Stage(
        "curate",
        "3",  # 3: joins in pass 2 (rejected.jsonl line order), CPU embedding batch 16
        (),
        curate_config,
        "lima.stages.curate:run",
        "read sources, apply LIMA's filters, dedup, decontaminate, select, split",
        CurateResult,
    ),
    Stage(
        "train",
        "2",
        ("curate",),
        train_config,
        "lima.stages.train:run",
        "fine-tune the base model with DeepSpeed ZeRO in Ray Train; export eligible epochs",
        TrainResult,
    ),
    Stage(
        "select",
        "2",
        ("curate", "train"),
        select_config,
        "lima.stages.select:run",
        "answer dev prompts with each eligible epoch; pick the best by judged win rate",
        SelectResult,
    ),
    Stage(
        "generate",
        "2",
        ("curate", "train", "select"),
        generate_config,
        "lima.stages.generate:run",
        "answer the prompt sets with the selected checkpoint and the baselines",
        GenerateResult,
    ),
    Stage(
        "judge",
        "2",
        ("generate",),
        judge_stage_config,
        "lima.stages.judge:run",
        "pairwise (both orders), absolute, Likert and safety verdicts with aggregates",
        JudgeResult,
    ),
    Stage(
        "report",
        "2",
        ("curate", "train", "select", "generate", "judge"),
        report_config,
        "lima.stages.report:run",
        "HTML report with win/tie/loss, ratings, training curves, data mix and lineage",
        ReportResult,
    ),
)

NAMES: tuple[str, ...] = tuple(stage.name for stage in GRAPH)


def get(name: str, stages: Sequence[Stage] = GRAPH) -> Stage:
    for stage in stages:
        if stage.name == name:
            return stage
    raise LimaError(f"unknown stage {name!r} (known: {', '.join(s.name for s in stages)})")


def topological(stages: Iterable[Stage]) -> list[Stage]:
    """Stages ordered so that every stage comes after its inputs; errors on cycles/unknowns."""
    by_name = {s.name: s for s in stages}
    ordered: list[Stage] = []
    state: dict[str, str] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise LimaError(f"stage cycle: {' -> '.join((*chain, name))}")
        if name not in by_name:
            raise LimaError(f"stage {chain[-1]!r} needs unknown stage {name!r}")
        state[name] = "visiting"
        for dependency in by_name[name].inputs:
            visit(dependency, (*chain, name))
        state[name] = "done"
        ordered.append(by_name[name])

    for name in by_name:
        visit(name, ())
    return ordered


def ancestors(name: str, stages: Sequence[Stage] = GRAPH) -> set[str]:
    """Every stage `name` depends on, directly or not."""
    by_name = {s.name: s for s in stages}
    seen: set[str] = set()
    stack = list(get(name, stages).inputs)
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(by_name[current].inputs)
    return seen


# ── the one walk ───────────────────────────────────────────────────────────────────────────


class Manifests(Protocol):
    """Where published artifacts are looked up (an ArtifactStore, or the operator's memo)."""

    def manifest(self, stage: str, key: str) -> Manifest | None: ...


@dataclass(frozen=True)
class PlannedStage:
    stage: Stage
    key: str | None
    """None while an input has no artifact yet (the key depends on the inputs' digests)."""
    manifest: Manifest | None
    """The published artifact under `key`, if any (a cache hit)."""

    @property
    def name(self) -> str:
        return self.stage.name

    @property
    def cached(self) -> bool:
        return self.manifest is not None

    @property
    def runnable(self) -> bool:
        """Every input is published, so this stage can run now."""
        return self.key is not None and self.manifest is None

    def result(self) -> StageResult | None:
        return self.stage.read_result(self.manifest)


def plan(
    experiment: Experiment,
    store: Manifests,
    stages: Sequence[Stage] = GRAPH,
    *,
    ignore_cache: Callable[[Stage], bool] = lambda stage: False,
) -> list[PlannedStage]:
    """Every stage in graph order with its key (when computable) and its cached artifact.

    `ignore_cache(stage)` treats a stage's artifact as absent (a forced re-run): its key is still
    known, but stages after it have no key until it has run again.
    """
    done: dict[str, Manifest] = {}
    planned: list[PlannedStage] = []
    for stage in topological(stages):
        if any(name not in done for name in stage.inputs):
            planned.append(PlannedStage(stage, None, None))
            continue
        key = stage.key(experiment, {name: done[name] for name in stage.inputs})
        manifest = None if ignore_cache(stage) else store.manifest(stage.name, key)
        if manifest is not None:
            done[stage.name] = manifest
        planned.append(PlannedStage(stage, key, manifest))
    return planned


def results(planned: Iterable[PlannedStage]) -> dict[str, StageResult]:
    """The typed results of the cached stages of a plan, by stage name."""
    found = {p.name: p.result() for p in planned}
    return {name: result for name, result in found.items() if result is not None}
