"""Reading an Experiment from YAML and turning pydantic's errors into path-precise messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lima.errors import SpecError
from lima.spec import Experiment

_RULES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "string_too_short": "must be at least {min_length} character(s)",
    "string_too_long": "must be at most {max_length} characters",
    "string_pattern_mismatch": "must match {pattern}",
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
    "literal_error": "must be {expected}",
    "enum": "must be one of {expected}",
}


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or "[" in str(part):
            continue  # pydantic's internal validator frames carry no user-facing meaning
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_errors(error: ValidationError) -> list[str]:
    """One `path: rule (got value)` line per problem, in document order."""
    problems = []
    for item in error.errors(include_url=False):
        template = _RULES.get(item["type"])
        ctx = item.get("ctx") or {}
        rule = template.format(**ctx) if template else item["msg"]
        if item["type"].startswith("value_error"):
            rule = str(ctx.get("error", item["msg"]))
        got = "" if item["type"] == "missing" else f" (got {_show(item['input'])})"
        if item["type"] == "model_attributes_type" or item["type"].endswith("_type"):
            rule = item["msg"].lower()
        problems.append(f"{_path(item['loc'])}: {rule}{got}")
    return problems


def parse_experiment(document: Any, source: str = "<document>") -> Experiment:
    """Validate an already-parsed document; raise SpecError listing every problem."""
    if not isinstance(document, dict):
        raise SpecError(source, [f"(document): must be a mapping (got {_show(document)})"])
    try:
        return Experiment.model_validate(document)
    except ValidationError as error:
        raise SpecError(source, describe_errors(error)) from None


def parse_yaml(text: str, source: str = "<document>") -> Experiment:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise SpecError(source, [f"(yaml): {where}{problem}"]) from None
    return parse_experiment(document, source)


def load_experiment(location: str | Path) -> Experiment:
    """Read an Experiment from a local path or an s3:// URI."""
    location = str(location)
    if location.startswith("s3://"):
        from lima.store import read_uri

        text = read_uri(location).decode("utf-8")
    else:
        path = Path(location)
        if not path.is_file():
            raise SpecError(location, [f"(file): no such file: {location}"])
        text = path.read_text(encoding="utf-8")
    return parse_yaml(text, location)
