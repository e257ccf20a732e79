"""`generate`: answer every prompt set with the selected checkpoint, and the baselines.

Systems: `lima` (the train artifact's epoch chosen by the select stage) and every baseline of
`spec.judge.baselines`: a `model` is answered here with the same decoding settings and seeds, an
`answers` file (JSONL `{"id", "answer"}`, `{"id", "answers": [...]}` or FastChat's model_answer
layout) is matched to the prompts by id.

Artifact:

    prompts/<set>.jsonl              the prompts answered (id, user turns, references, tags)
    answers/<set>/<system>.jsonl     one answer record per prompt (see lima.generation.answers)
    rejected/<set>.jsonl             prompt or answer rows that could not be read, with reasons
    generate.json                    selected epoch, decode settings, per-system statistics
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lima.dag import decode_config
from lima.errors import StageError
from lima.generation.answers import answer_stats, read_answer_file, write_jsonl
from lima.generation.config import DecodeConfig
from lima.generation.pool import ModelRef, answer_many
from lima.generation.prompt_sets import (
    PromptRecord,
    Rejected,
    read_prompt_file,
    resolve_prompt_file,
)
from lima.results import GenerateResult
from lima.stages._eval import epoch_ref, generation_resources, progress_note
from lima.stages.base import StageContext

SYSTEM = "lima"
"""Name of the fine-tuned model's answers in every output."""

Answers = dict[str, dict[str, list[dict[str, Any]]]]
"""{prompt set: {system: answer records}}"""


class _Run:
    """One execution of the stage: shared inputs and the baseline model folders."""

    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx
        self.spec = ctx.spec
        self.baseline_names = [b.name for b in self.spec.judge.baselines]
        if SYSTEM in self.baseline_names:
            raise StageError(
                f"spec.judge.baselines: the name {SYSTEM!r} is reserved for the fine-tuned model"
            )
        self.decode = DecodeConfig.from_spec(self.spec.generate)
        splits = {"train.jsonl", "dev.jsonl", "test.jsonl"}  # not rejected.jsonl (can be large)
        wanted = [o.path for o in ctx.inputs["curate"].objects if o.path in splits]
        self.curated = ctx.input_dir("curate", wanted)
        self.selection = json.loads(ctx.store.read_object(ctx.inputs["select"], "selection.json"))
        epoch, folder = self.selection["selected_epoch"], self.selection["model_dir"]
        self.lima = epoch_ref(ctx, epoch, folder)
        self.throughput: dict[str, dict[str, float]] = {}
        """Generation time per model: for the run record only, never for the hashed files."""

    def prompts(self, prompt_set: Any) -> tuple[list[PromptRecord], list[Rejected]]:
        path = resolve_prompt_file(
            prompt_set.uri, self.curated, self.ctx.scratch_dir, self.ctx.settings
        )
        return read_prompt_file(path, prompt_set.limit)

    def baseline_model(self, baseline: Any) -> ModelRef:
        from lima.generation.baselines import prepare_baseline
        from lima.train.data import read_conversations, training_texts

        rows, _ = read_conversations(self.curated / "train.jsonl")
        folder: Path = prepare_baseline(
            baseline.model,
            self.spec.model,
            self.ctx.settings,
            self.ctx.scratch_dir,
            training_texts(rows),
            baseline.prompt_format,
        )
        return ModelRef(baseline.name, str(folder), prompt_format=baseline.prompt_format)

    def generate_all(self, sets: dict[str, list[PromptRecord]]) -> Answers:
        """Answers of the fine-tuned model and of every `model` baseline, for every set, in one
        pass of the replica pool (replicas start once)."""
        systems = [(SYSTEM, self.lima)] + [
            (b.name, self.baseline_model(b)) for b in self.spec.judge.baselines if b.model
        ]
        jobs = [
            (name, system, ref, prompts)
            for name, prompts in sets.items()
            for system, ref in systems
        ]
        answered = answer_many(
            [(ref, prompts) for _, _, ref, prompts in jobs],
            self.decode,
            generation_resources(self.ctx),
            settings=self.ctx.settings,
            storage=self.spec.storage,
            engine=self.spec.generate.engine,
            progress=progress_note(self.ctx, "answers"),
            throughput=self.throughput,
        )
        out: Answers = {name: {} for name in sets}
        for (name, system, _, _), records in zip(jobs, answered, strict=True):
            for record in records:
                record["system"] = system
            out[name][system] = records
        return out

    def supplied_answers(
        self, baseline: Any, prompts: list[PromptRecord]
    ) -> tuple[list[dict[str, Any]], list[Rejected]]:
        from lima.store import localize_uri

        path = localize_uri(baseline.answers, self.ctx.scratch_dir, self.ctx.settings)
        if not path.is_file():
            raise StageError(
                f"baseline {baseline.name}: answers file not found: {baseline.answers}"
            )
        return read_answer_file(path, baseline.name, prompts)


def _write_set(out: Path, name: str, systems: dict[str, list], rejected: list[Rejected]) -> None:
    for system, records in systems.items():
        write_jsonl(out / "answers" / name / f"{system}.jsonl", records)
    if rejected:
        write_jsonl(out / "rejected" / f"{name}.jsonl", [r.__dict__ for r in rejected])


def run(ctx: StageContext) -> GenerateResult:
    job = _Run(ctx)
    prompts: dict[str, list[PromptRecord]] = {}
    rejected: dict[str, list[Rejected]] = {}
    for prompt_set in ctx.spec.generate.prompt_sets:
        records, bad = job.prompts(prompt_set)
        if not records:
            raise StageError(
                f"prompt set {prompt_set.name} ({prompt_set.uri}) has no usable prompt"
            )
        prompts[prompt_set.name], rejected[prompt_set.name] = records, bad
        write_jsonl(
            ctx.output_dir / "prompts" / f"{prompt_set.name}.jsonl", [p.to_dict() for p in records]
        )
    answers = job.generate_all(prompts)
    for baseline in ctx.spec.judge.baselines:
        if baseline.answers is not None:
            for name, records in prompts.items():
                answers[name][baseline.name], bad = job.supplied_answers(baseline, records)
                rejected[name] += bad
    sets: dict[str, Any] = {}
    for prompt_set in ctx.spec.generate.prompt_sets:
        name = prompt_set.name
        systems = {s: answers[name][s] for s in [SYSTEM, *job.baseline_names]}
        _write_set(ctx.output_dir, name, systems, rejected[name])
        sets[name] = {
            "uri": prompt_set.uri,
            "prompts": len(prompts[name]),
            "rejected": len(rejected[name]),
            "systems": {system: answer_stats(records) for system, records in systems.items()},
        }
    summary = {
        "selected_epoch": job.selection["selected_epoch"],
        "model_dir": job.selection["model_dir"],
        "decode": decode_config(ctx.experiment),
        "system": SYSTEM,
        "baselines": [b.model_dump(mode="json") for b in ctx.spec.judge.baselines],
        "sets": sets,
    }
    (ctx.output_dir / "generate.json").write_text(json.dumps(summary, indent=2) + "\n")
    return GenerateResult(
        selected_epoch=summary["selected_epoch"],
        sets={k: v["prompts"] for k, v in sets.items()},
        throughput=job.throughput,
    )
