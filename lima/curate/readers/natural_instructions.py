"""Super-NaturalInstructions task JSON (v2: Definition is a list; older: a string).

LIMA 2.1: "we select 50 natural language generation tasks ... and pick a single random example
from each one". The prompt is the task definition followed by the instance input.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lima.curate.readers.base import Reader
from lima.curate.records import Doc, Rejection, doc
from lima.curate.text import has_invalid_utf8
from lima.spec.data import NaturalInstructionsFilters


@dataclass
class NaturalInstructionsReader(Reader):
    rules: NaturalInstructionsFilters
    seed: int

    def read(self) -> Iterator[Doc | Rejection]:
        task, error = _load(self.path, self.max_chars)
        name = Path(self.path).stem
        if task is None:
            self.counted()
            yield self.bad_row("file", error)
            return
        skip = _skip_reason(task, self.rules)
        instances = task.get("Instances") if isinstance(task.get("Instances"), list) else []
        self.counted(max(len(instances), 1))
        if skip or not instances:
            rows = max(len(instances), 1)
            yield self.drop("task", skip or "no_instances", f"task {name}", rows=rows)
            return
        yield self._one_instance(task, instances, name)

    def _one_instance(
        self, task: dict[str, Any], instances: list[Any], name: str
    ) -> Doc | Rejection:
        order = list(range(len(instances)))
        random.Random(f"{self.seed}:{name}").shuffle(order)
        chosen = next((i for i in order if _usable(instances[i], self.rules)), None)
        if chosen is None:
            return self.drop("task", "no_valid_instance", f"task {name}", rows=len(instances))
        # One example per task (paper); the rest are not rejected as bad, just not sampled.
        self.stats.count_drop(self.source, "not_sampled", len(instances) - 1)
        instance = instances[chosen]
        prompt = f"{definition(task)}\n\n{instance['input'].strip()}"
        return doc(
            self.source,
            self.path,
            instance.get("id", chosen),
            [prompt, _first_output(instance).strip()],
            tags=[str(c).lower() for c in _as_list(task.get("Categories"))],
            meta={"task": name},
        )


def _load(path: str, max_chars: int) -> tuple[dict[str, Any] | None, str]:
    if os.path.getsize(path) > max_chars * 50:
        return None, f"field_too_large: task file of {os.path.getsize(path)} bytes"
    raw = Path(path).read_bytes()
    try:
        task = json.loads(raw.decode("utf-8").lstrip("\ufeff"))
    except UnicodeDecodeError as error:
        return None, f"invalid_utf8: {error.reason} at byte {error.start}"
    except json.JSONDecodeError as error:
        return None, f"json_error: {error.msg} at line {error.lineno}"
    if not isinstance(task, dict):
        return None, "wrong_schema: the task file is not a JSON object"
    return task, ""


def definition(task: dict[str, Any]) -> str:
    value = task.get("Definition", "")
    if isinstance(value, list):
        value = "\n".join(str(v) for v in value)
    return str(value).strip()


def _skip_reason(task: dict[str, Any], rules: NaturalInstructionsFilters) -> str | None:
    allowed = {c.strip().lower() for c in rules.generation_categories}
    if not any(str(c).strip().lower() in allowed for c in _as_list(task.get("Categories"))):
        return "not_generation_task"
    if rules.english_only:
        languages = _as_list(task.get("Input_language")) + _as_list(task.get("Output_language"))
        if any(str(lang).lower() != "english" for lang in languages):
            return "not_english"
    if not definition(task):
        return "no_definition"
    lengths = sorted(len(_first_output(i).strip()) for i in _as_list(task.get("Instances")))
    if lengths and lengths[len(lengths) // 2] < rules.min_output_chars:
        return "outputs_too_short"
    return None


def _first_output(instance: Any) -> str:
    output = instance.get("output") if isinstance(instance, dict) else None
    first = output[0] if isinstance(output, list) and output else output
    return first if isinstance(first, str) else ""


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _usable(instance: Any, rules: NaturalInstructionsFilters) -> bool:
    return _valid(instance) and len(_first_output(instance).strip()) >= rules.min_output_chars


def _valid(instance: Any) -> bool:
    if not isinstance(instance, dict) or not isinstance(instance.get("input"), str):
        return False
    output = instance.get("output")
    first = output[0] if isinstance(output, list) and output else output
    return (
        isinstance(first, str)
        and bool(first.strip())
        and bool(instance["input"].strip())
        and not has_invalid_utf8(instance["input"] + first)
    )
