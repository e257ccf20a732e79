"""`parse_yaml` rejects invalid Experiments with one `path: rule (got value)` line per problem."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from conftest import REPO

from lima.errors import SpecError
from lima.spec.load import load_experiment, parse_experiment, parse_yaml


def base_document() -> dict[str, Any]:
    """A small valid Experiment (every section that has list items is present)."""
    return {
        "apiVersion": "lima-run.io/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": "demo"},
        "spec": {
            "data": {
                "sources": [
                    {"name": "se", "kind": "stackexchange", "uri": "a/*.xml", "quota": 5},
                    {"name": "wh", "kind": "wikihow", "uri": "b.csv", "quota": 5},
                ],
                "filters": {"natural_instructions": {"tasks": 5}},
            },
            "train": {"epochs": 6, "eligible_epochs": [4, 5, 6], "lr": 1e-3, "final_lr": 1e-4},
            "generate": {"prompt_sets": [{"name": "test", "uri": "curated:test", "limit": 4}]},
            "judge": {"protocols": ["pairwise"], "baselines": [{"name": "base", "model": "tiny"}]},
            "resources": {"train": {"workers": 2, "memory": "4Gi"}},
        },
    }


def problems_of(document: Any) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_yaml(yaml.safe_dump(document), "bad.yaml")
    assert caught.value.source == "bad.yaml"
    return caught.value.problems


def edit(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    document = copy.deepcopy(base_document())
    change(document)
    return document


DNS = "must be a DNS-1035 label (a-z, 0-9 and '-', starting with a letter)"

CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "typo at the top of spec",
        lambda d: d["spec"].update(trian={"epochs": 3}),
        "spec.trian: unknown field (did you mean 'train'?) (got {'epochs': 3})",
    ),
    (
        "typo in a section",
        lambda d: d["spec"]["train"].update(learning_rate=0.1),
        "spec.train.learning_rate: unknown field (got 0.1)",
    ),
    (
        "typo three levels down",
        lambda d: d["spec"]["data"]["filters"]["natural_instructions"].update(taskz=5),
        "spec.data.filters.natural_instructions.taskz: unknown field (did you mean 'tasks'?) "
        "(got 5)",
    ),
    (
        "typo inside a list item",
        lambda d: d["spec"]["data"]["sources"][1].update(qouta=3),
        "spec.data.sources[1].qouta: unknown field (did you mean 'quota'?) (got 3)",
    ),
    (
        "wrong type",
        lambda d: d["spec"]["train"].update(epochs="six"),
        "spec.train.epochs: must be an integer (got 'six')",
    ),
    (
        "mapping expected",
        lambda d: d["spec"].update(model=["tiny"]),
        "spec.model: must be a mapping (got ['tiny'])",
    ),
    (
        "string expected",
        lambda d: d["spec"].update(model={"base": 3}),
        "spec.model.base: must be a string (got 3)",
    ),
    (
        "out of range",
        lambda d: d["spec"]["train"].update(lr=-1),
        "spec.train.lr: must be > 0 (got -1)",
    ),
    (
        "out of range, upper bound",
        lambda d: d["spec"]["generate"].update(top_p=1.5),
        "spec.generate.top_p: must be <= 1 (got 1.5)",
    ),
    (
        "list item out of range",
        lambda d: d["spec"]["data"]["sources"][1].update(quota=-3),
        "spec.data.sources[1].quota: must be >= 0 (got -3)",
    ),
    (
        "nullable field out of range",
        lambda d: d["spec"]["generate"]["prompt_sets"][0].update(limit=0),
        "spec.generate.prompt_sets[0].limit: must be >= 1 (got 0)",
    ),
    (
        "bad enum",
        lambda d: d["spec"]["data"]["sources"][0].update(kind="reddit"),
        "spec.data.sources[0].kind: must be one of 'stackexchange', 'wikihow', 'writingprompts', "
        "'natural_instructions' or 'authored' (got 'reddit')",
    ),
    (
        "bad enum in a list of enums",
        lambda d: d["spec"]["judge"].update(protocols=["pairwise", "elo"]),
        "spec.judge.protocols[1]: must be one of 'pairwise', 'absolute', 'likert', 'safety' "
        "or 'single' (got 'elo')",
    ),
    (
        "bad literal",
        lambda d: d["spec"]["train"].update(zero_stage=1),
        "spec.train.zero_stage: must be 2 or 3 (got 1)",
    ),
    (
        "name not DNS-1035",
        lambda d: d["metadata"].update(name="My_Experiment"),
        f"metadata.name: {DNS} (got 'My_Experiment')",
    ),
    (
        "name too long",
        lambda d: d["metadata"].update(name="a" * 31),
        f"metadata.name: must be at most 30 characters (got {'a' * 31!r})",
    ),
    (
        "bad pattern in a list item",
        lambda d: d["spec"]["data"]["sources"][0].update(name="SE"),
        f"spec.data.sources[0].name: {DNS} (got 'SE')",
    ),
    (
        "bad quantity",
        lambda d: d["spec"]["resources"]["train"].update(memory="4GB"),
        "spec.resources.train.memory: must be a Kubernetes quantity such as 512Mi or 4Gi "
        "(got '4GB')",
    ),
    (
        "missing required field",
        lambda d: d["spec"]["data"]["sources"][1].pop("quota"),
        "spec.data.sources[1].quota: required field is missing",
    ),
    (
        "missing section",
        lambda d: d["spec"].pop("data"),
        "spec.data: required field is missing",
    ),
    (
        "empty list",
        lambda d: d["spec"]["data"].update(sources=[]),
        "spec.data.sources: must have at least 1 item(s) (got [])",
    ),
    (
        "final_lr > lr",
        lambda d: d["spec"]["train"].update(final_lr=0.1),
        "spec.train: final_lr (0.1) must be <= lr (0.001)",
    ),
    (
        "eligible epochs outside 1..epochs",
        lambda d: d["spec"]["train"].update(eligible_epochs=[0, 5, 9]),
        "spec.train: eligible_epochs [0, 9] are outside 1..epochs (6)",
    ),
    (
        "duplicate source names",
        lambda d: d["spec"]["data"]["sources"][1].update(name="se"),
        "spec.data: source names must be unique (repeated: se)",
    ),
    (
        "baseline with both answers and model",
        lambda d: d["spec"]["judge"]["baselines"][0].update(answers="b.jsonl"),
        "spec.judge.baselines[0]: a baseline needs exactly one of `answers` or `model`",
    ),
    (
        "baseline with neither answers nor model",
        lambda d: d["spec"]["judge"]["baselines"][0].pop("model"),
        "spec.judge.baselines[0]: a baseline needs exactly one of `answers` or `model`",
    ),
    (
        "wrong apiVersion",
        lambda d: d.update(apiVersion="lima-run.io/v2"),
        "apiVersion: must be 'lima-run.io/v1alpha1' (got 'lima-run.io/v2')",
    ),
    (
        "wrong kind",
        lambda d: d.update(kind="RayJob"),
        "kind: must be 'Experiment' (got 'RayJob')",
    ),
]


@pytest.mark.parametrize(("change", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_kind_of_problem_has_a_path_precise_message(change, expected: str) -> None:
    assert problems_of(edit(change)) == [expected]


def test_the_base_document_and_the_demo_are_valid() -> None:
    assert parse_experiment(base_document()).metadata.name == "demo"
    assert load_experiment(REPO / "examples" / "experiment.yaml").spec.train.epochs >= 1


def test_all_problems_are_listed_at_once() -> None:
    def many(d: dict[str, Any]) -> None:
        d["spec"]["train"].update(lr=-1, epochs="six")
        d["spec"]["data"]["sources"][1].update(quota=-3, qouta=1)
        d["metadata"]["name"] = "Bad_Name"

    problems = problems_of(edit(many))
    assert set(problems) == {
        f"metadata.name: {DNS} (got 'Bad_Name')",
        "spec.data.sources[1].quota: must be >= 0 (got -3)",
        "spec.data.sources[1].qouta: unknown field (did you mean 'quota'?) (got 1)",
        "spec.train.epochs: must be an integer (got 'six')",
        "spec.train.lr: must be > 0 (got -1)",
    }
    with pytest.raises(SpecError) as caught:
        parse_experiment(edit(many), "x.yaml")
    assert str(caught.value).startswith("x.yaml: 5 problem(s)\n  ")


def test_yaml_syntax_error_names_the_line() -> None:
    text = yaml.safe_dump(base_document()).replace("kind: Experiment", "kind: [Experiment")
    line = text.splitlines().index("kind: [Experiment") + 1
    with pytest.raises(SpecError) as caught:
        parse_yaml(text, "bad.yaml")
    (problem,) = caught.value.problems
    assert problem.startswith("(yaml): line ")
    assert int(problem.split("line ")[1].split(",")[0]) >= line


def test_duplicate_yaml_keys_are_errors_not_silently_merged() -> None:
    text = "apiVersion: lima-run.io/v1alpha1\nkind: Experiment\nmetadata: {name: a}\n"
    text += "spec:\n  data: {sources: []}\n  train:\n    lr: 0.1\n    lr: 0.2\n"
    with pytest.raises(SpecError) as caught:
        parse_yaml(text)
    assert caught.value.problems == [
        "(yaml): line 8, column 5: duplicate key 'lr' (first on line 7)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "(document): must be a mapping (got ['a', 'b'])"),
        ("just a string\n", "(document): must be a mapping (got 'just a string')"),
        ("", "(document): is empty; expected an Experiment mapping"),
    ],
)
def test_non_mapping_documents(text: str, expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_yaml(text)
    assert caught.value.problems == [expected]


def test_missing_file_is_a_spec_error(tmp_path) -> None:
    with pytest.raises(SpecError) as caught:
        load_experiment(tmp_path / "nope.yaml")
    assert caught.value.problems == [f"(file): no such file: {tmp_path / 'nope.yaml'}"]


def test_experiment_loads_from_s3(s3_settings, monkeypatch) -> None:
    from lima.store import s3_backend

    backend = s3_backend(s3_settings, "specs")
    backend.put_bytes("exp/one.yaml", yaml.safe_dump(base_document()).encode())
    for name, value in s3_settings.model_dump().items():
        if value is not None and name.startswith("s3_"):
            raw = value.get_secret_value() if hasattr(value, "get_secret_value") else value
            monkeypatch.setenv(f"LIMA_{name.upper()}", str(raw))
    assert load_experiment("s3://specs/exp/one.yaml").metadata.name == "demo"


def test_union_members_read_as_one_problem() -> None:
    """No union exists in the spec today; a section that adds one still gets clean messages."""
    from pydantic import BaseModel, ValidationError

    from lima.spec.load import describe_errors

    class Section(BaseModel):
        size: int | list[int]
        tags: list[int | None] = []

    with pytest.raises(ValidationError) as caught:
        Section.model_validate({"size": "big", "tags": [1, "x"]})
    assert describe_errors(caught.value) == [
        "size: must be an integer or must be a list (got 'big')",
        "tags[1]: must be an integer (got 'x')",
    ]


# Issue 13: each spec hole that used to pass `validate` and fail later (or never).
HOLES: list[tuple[str, Callable[[dict[str, Any]], None], list[str]]] = [
    (
        "non-dividing global batch",
        lambda d: d["spec"]["train"].update(global_batch_size=5),
        [
            "spec.train.global_batch_size: must be a multiple of micro_batch_size (1) x "
            "resources.train.workers (2) = 2 (got 5)"
        ],
    ),
    (
        "infinite learning rate",
        lambda d: d["spec"]["train"].update(lr=float("inf"), final_lr=0.0),
        ["spec.train.lr: must be a finite number (got inf)"],
    ),
    (
        "nan dropout",
        lambda d: d["spec"]["train"].update(residual_dropout=float("nan")),
        ["spec.train.residual_dropout: must be a finite number (got nan)"],
    ),
    (
        "a boolean for a worker count",
        lambda d: d["spec"]["resources"]["train"].update(workers=True),
        ["spec.resources.train.workers: must be a number, not true/false (got True)"],
    ),
    (
        "a boolean in a list of epochs",
        lambda d: d["spec"]["train"].update(eligible_epochs=[True, 5]),
        ["spec.train.eligible_epochs: must be a number, not true/false"],
    ),
    (
        "every quota 0",
        lambda d: [s.update(quota=0) for s in d["spec"]["data"]["sources"]],
        ["spec.data.sources: every quota is 0: at least one source must select examples"],
    ),
    (
        "a trillion epochs",
        lambda d: d["spec"]["train"].update(epochs=int(1e12), eligible_epochs=[1]),
        ["spec.train.epochs: must be <= 1000 (got 1000000000000)"],
    ),
    (
        "a trillion new tokens",
        lambda d: d["spec"]["generate"].update(max_new_tokens=int(1e12)),
        ["spec.generate.max_new_tokens: must be <= 131072 (got 1000000000000)"],
    ),
    (
        "a trillion bootstrap resamples",
        lambda d: d["spec"]["judge"].update(bootstrap_resamples=int(1e12)),
        ["spec.judge.bootstrap_resamples: must be <= 100000 (got 1000000000000)"],
    ),
    (
        "a billion-word n-gram (answer decontamination silently off)",
        lambda d: d["spec"]["data"].update(decontamination={"ngram": int(1e9)}),
        ["spec.data.decontamination.ngram: must be <= 50 (got 1000000000)"],
    ),
    (
        "more selection prompts than dev prompts",
        lambda d: d["spec"]["data"].update(splits={"dev": 5, "test": 10}),
        [
            "spec.judge.selection_prompts: must be <= data.splits.dev (5), the dev prompts "
            "checkpoint selection answers (got 50)"
        ],
    ),
    (
        "a curated prompt set larger than its split",
        lambda d: d["spec"]["generate"]["prompt_sets"][0].update(limit=400),
        ["spec.generate.prompt_sets[0].limit: must be <= data.splits.test (300) (got 400)"],
    ),
    (
        "an empty curated split as a prompt set",
        lambda d: d["spec"]["data"].update(splits={"dev": 50, "test": 0}),
        ["spec.generate.prompt_sets[0].uri: curated:test is empty (data.splits.test is 0)"],
    ),
]

PREFIX_RULE = (
    "must be a relative key prefix: segments of A-Z a-z 0-9 . _ - joined by '/', "
    "with no leading '/', no '.' or '..' segment and no empty segment"
)


@pytest.mark.parametrize(("change", "expected"), [c[1:] for c in HOLES], ids=[c[0] for c in HOLES])
def test_spec_holes_are_refused_with_the_field(change, expected: list[str]) -> None:
    assert problems_of(edit(change)) == expected


@pytest.mark.parametrize("prefix", ["/etc", "../other", "a/../../b", "a//b", "./x", "a/./b", "a b"])
def test_storage_prefix_cannot_leave_the_store(prefix: str) -> None:
    change = edit(lambda d: d["spec"].update(storage={"prefix": prefix}))
    assert problems_of(change) == [f"spec.storage.prefix: {PREFIX_RULE} (got {prefix!r})"]


@pytest.mark.parametrize("prefix", ["", "lima", "team-a/exp.1", "lima/"])
def test_relative_prefixes_are_fine(prefix: str) -> None:
    parse_experiment(edit(lambda d: d["spec"].update(storage={"prefix": prefix})))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x7fELF\x02\x01\x01\x00\x00", "(file): binary content (NUL byte at offset 7)"),
        (b"kind: Exp\xe9riment\n", "(file): not UTF-8 text (byte 0xe9 at offset 9)"),
    ],
)
def test_binary_and_non_utf8_files_are_spec_errors(tmp_path, content: bytes, expected) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(content)
    with pytest.raises(SpecError) as caught:
        load_experiment(path)
    assert caught.value.problems == [expected]


def test_a_directory_is_not_a_spec(tmp_path) -> None:
    with pytest.raises(SpecError) as caught:
        load_experiment(tmp_path)
    assert caught.value.problems == [f"(file): is a directory, not a file: {tmp_path}"]
