"""Reading an Experiment from YAML and turning pydantic's errors into path-precise messages.

Every problem becomes one line `path: rule (got value)`, e.g. `spec.train.lr: must be > 0 (got -1)`,
and all of a document's problems are reported at once.
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from lima.errors import SpecError
from lima.spec import Experiment
from lima.spec.checks import AT
from lima.spec.data import DNS_LABEL
from lima.spec.resources import PREFIX_PATTERN, PREFIX_RULE, QUANTITY

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
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "finite_number": "must be a finite number",
}

# Regexes users should not have to read: what they mean instead.
_PATTERNS = {
    DNS_LABEL: "must be a DNS-1035 label (a-z, 0-9 and '-', starting with a letter)",
    QUANTITY: "must be a Kubernetes quantity such as 512Mi or 4Gi",
    PREFIX_PATTERN: PREFIX_RULE,
    r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$": "must be an S3 bucket name (3-63 of a-z 0-9 . -)",
}

# Frames pydantic adds to `loc` for validators and union members; not field names.
_INTERNAL = {
    "function-after",
    "function-before",
    "function-wrap",
    "function-plain",
    "lax-or-strict",
}
_UNION_TAGS = {
    "int",
    "float",
    "str",
    "bool",
    "none",
    "list",
    "dict",
    "is-instance",
    "json-or-python",
}


def _number(value: Any) -> Any:
    """`0.0` -> `0` so bounds read as the user wrote them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _user_loc(loc: tuple[int | str, ...]) -> list[int | str]:
    parts: list[int | str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(part)
        elif part in _INTERNAL or part in _UNION_TAGS or "[" in part:
            continue  # pydantic's internal frames carry no user-facing meaning
        else:
            parts.append(part)
    return parts


def _path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    out = ""
    for part in _user_loc(tuple(loc)):
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


def _show(value: Any) -> str:
    text = repr(_number(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _model_at(loc: list[int | str]) -> type[BaseModel] | None:
    """The spec model that the location points into (to suggest field names for typos)."""
    current: Any = Experiment
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            continue  # list items: _unwrap already gave the item type
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = field.annotation
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X, `list[X]` -> X (repeatedly)."""
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        elif origin is list:
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation


def _unknown_field(loc: list[int | str]) -> str:
    model = _model_at(loc[:-1])
    name = loc[-1] if loc else ""
    if model is None or not isinstance(name, str):
        return "unknown field"
    close = difflib.get_close_matches(name, list(model.model_fields), n=1, cutoff=0.6)
    return f"unknown field (did you mean {close[0]!r}?)" if close else "unknown field"


def _rule(item: dict[str, Any]) -> str:
    kind, ctx = item["type"], item.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_field(_user_loc(item["loc"]))
    if kind.startswith("value_error") or kind == "assertion_error":
        return str(ctx.get("error", item["msg"])).removeprefix("Value error, ")
    if kind == "string_pattern_mismatch" and ctx.get("pattern") in _PATTERNS:
        return _PATTERNS[ctx["pattern"]]
    template = _RULES.get(kind)
    if template is None:
        return item["msg"][:1].lower() + item["msg"][1:]
    return template.format(**{k: _number(v) for k, v in ctx.items()})


def _got(item: dict[str, Any]) -> str:
    kind, value = item["type"], item.get("input")
    if kind == "missing":
        return ""
    if kind.startswith("value_error") and isinstance(value, (dict, list)):
        return ""  # a cross-field rule names its values; a dump of the section would not help
    return f" (got {_show(value)})"


def describe_errors(error: ValidationError) -> list[str]:
    """One `path: rule (got value)` line per problem, in document order.

    A value that fits no member of a union gives pydantic one error per member; they become
    one line, `must be an integer or must be a list`. A cross-section rule reports
    `at <relative path>: <rule>` lines (lima.spec.checks); each becomes its own line at its
    own field.
    """
    rules: dict[tuple[str, str], list[str]] = {}
    for item in error.errors(include_url=False):
        for path, rule, got in _located(item):
            found = rules.setdefault((path, got), [])
            if rule not in found:
                found.append(rule)
    return [f"{path}: {' or '.join(found)}{got}" for (path, got), found in rules.items()]


def _located(item: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(path, rule, got) of a pydantic error, split into its `at <path>:` parts if it has any."""
    rule, path = _rule(item), _path(item["loc"])
    if not rule.startswith(AT):
        return [(path, rule, _got(item))]
    base = "" if path == "(document)" else path + "."
    located = []
    for line in rule.splitlines():
        where, _, text = line.removeprefix(AT).partition(": ")
        located.append((base + where, text, ""))
    return located


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that rejects duplicate keys (PyYAML keeps the last one silently)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def parse_experiment(document: Any, source: str = "<document>") -> Experiment:
    """Validate an already-parsed document; raise SpecError listing every problem."""
    if document is None:
        raise SpecError(source, ["(document): is empty; expected an Experiment mapping"])
    if not isinstance(document, dict):
        raise SpecError(source, [f"(document): must be a mapping (got {_show(document)})"])
    try:
        return Experiment.model_validate(document)
    except ValidationError as error:
        raise SpecError(source, describe_errors(error)) from None
    except RecursionError:
        raise SpecError(source, [TOO_DEEP]) from None


TOO_DEEP = "(document): nested too deeply (hundreds of levels of lists or mappings); not a spec"


def parse_yaml(text: str, source: str = "<document>") -> Experiment:
    try:
        document = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise SpecError(source, [f"(yaml): {where}{problem}"]) from None
    except RecursionError:  # PyYAML parses nesting recursively: `[[[[...` 500 deep overflows
        raise SpecError(source, [TOO_DEEP]) from None
    return parse_experiment(document, source)


MAX_SPEC_BYTES = 4 << 20  # an Experiment is a few KiB of YAML; anything huge is a wrong file


def _read_bytes(path: Path, location: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SPEC_BYTES + 1)
    except OSError as error:
        raise SpecError(location, [f"(file): cannot read it ({error.strerror})"]) from None
    return data


def spec_text(data: bytes, location: str) -> str:
    """The document as text, or a SpecError for a file that is not a YAML document at all
    (binary, another encoding, far too large)."""
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(location, [f"(file): larger than {MAX_SPEC_BYTES >> 20} MiB; not a spec"])
    if b"\x00" in data:
        offset = data.index(b"\x00")
        raise SpecError(location, [f"(file): binary content (NUL byte at offset {offset})"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        byte = data[error.start]
        raise SpecError(
            location, [f"(file): not UTF-8 text (byte 0x{byte:02x} at offset {error.start})"]
        ) from None


def load_experiment(location: str | Path) -> Experiment:
    """Read an Experiment from a local path or an s3:// URI."""
    location = str(location)
    if location.startswith("s3://"):
        from lima.store import read_uri

        text = spec_text(read_uri(location), location)
    else:
        path = Path(location)
        if not path.is_file():
            what = "is a directory, not a file" if path.is_dir() else "no such file"
            raise SpecError(location, [f"(file): {what}: {location}"])
        text = spec_text(_read_bytes(path, location), location)
        # Relative paths in the file mean "next to the file", not "next to the shell".
        from lima.spec.paths import resolve_spec_paths

        return resolve_spec_paths(parse_yaml(text, location), path.parent)
    return parse_yaml(text, location)
