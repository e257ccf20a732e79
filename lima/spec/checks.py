"""Rules that span sections of the spec (one section cannot check them alone).

Each problem reads `at <path>: <rule>` with the path relative to `spec`; `lima.spec.load` turns
it into the usual `spec.<path>: <rule>` line, so a refused spec names the exact field to change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lima.spec import ExperimentSpec

AT = "at "


def at(path: str, rule: str) -> str:
    return f"{AT}{path}: {rule}"


def cross_section_problems(spec: ExperimentSpec) -> list[str]:
    return [*_batch(spec), *_quotas(spec), *_held_out(spec)]


def _batch(spec: ExperimentSpec) -> list[str]:
    """global batch = micro batch x accumulation x workers: it must divide, or training
    stops after curation has already run (ds_config.gradient_accumulation)."""
    train, workers = spec.train, spec.resources.train.workers
    per_step = train.micro_batch_size * workers
    # Unset: the size preset of lima.train picks it once the base model is known.
    if train.global_batch_size is None or train.global_batch_size % per_step == 0:
        return []
    return [
        at(
            "train.global_batch_size",
            f"must be a multiple of micro_batch_size ({train.micro_batch_size}) x "
            f"resources.train.workers ({workers}) = {per_step} (got {train.global_batch_size})",
        )
    ]


def _quotas(spec: ExperimentSpec) -> list[str]:
    if any(source.quota > 0 for source in spec.data.sources):
        return []
    return [at("data.sources", "every quota is 0: at least one source must select examples")]


def _held_out(spec: ExperimentSpec) -> list[str]:
    """Prompt counts that can never be met by the curated held-out splits."""
    splits, problems = spec.data.splits, []
    sizes = {
        "curated:dev": ("data.splits.dev", splits.dev),
        "curated:test": ("data.splits.test", splits.test),
    }
    for index, prompt_set in enumerate(spec.generate.prompt_sets):
        if prompt_set.uri not in sizes:
            continue
        name, size = sizes[prompt_set.uri]
        where = f"generate.prompt_sets[{index}]"
        if size == 0:
            problems.append(at(f"{where}.uri", f"{prompt_set.uri} is empty ({name} is 0)"))
        elif prompt_set.limit is not None and prompt_set.limit > size:
            problems.append(
                at(f"{where}.limit", f"must be <= {name} ({size}) (got {prompt_set.limit})")
            )
    if spec.judge.selection_prompts > splits.dev:
        problems.append(
            at(
                "judge.selection_prompts",
                f"must be <= data.splits.dev ({splits.dev}), the dev prompts checkpoint "
                f"selection answers (got {spec.judge.selection_prompts})",
            )
        )
    return problems
