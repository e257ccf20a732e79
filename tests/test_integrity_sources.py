"""Issue 13: a source file changed at the same URI re-runs curate; downloads are never stale."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml
from conftest import REPO
from store_helpers import moto_endpoint, s3cfg

from lima import dag
from lima.spec.load import load_experiment
from lima.store import localize_uri, s3_backend

__all__ = ["moto_endpoint", "s3cfg"]  # fixtures


def curate_key(spec_path: Path) -> str:
    return dag.get("curate").key(load_experiment(spec_path), {})


def demo_copy(tmp_path: Path, **source_uris: str) -> Path:
    """The demo experiment with its data copied next to it (so tests may edit the files)."""
    shutil.copytree(REPO / "examples" / "data", tmp_path / "data")
    document = yaml.safe_load((REPO / "examples" / "experiment.yaml").read_text())
    for source in document["spec"]["data"]["sources"]:
        source["uri"] = source_uris.get(source["name"], source["uri"].removeprefix("examples/"))
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_changing_a_local_source_file_changes_the_curate_key(tmp_path: Path) -> None:
    spec = demo_copy(tmp_path)
    before = curate_key(spec)
    assert curate_key(spec) == before  # stable
    target = next((tmp_path / "data" / "authored").glob("*.jsonl"))
    text = target.read_text()
    target.write_text(text.replace("a", "b", 1))  # same size, same URI, other content
    assert target.stat().st_size == len(text.encode())
    assert curate_key(spec) != before
    target.write_text(text)
    assert curate_key(spec) == before  # back to the same content, back to the same key


def test_touching_a_file_keeps_the_key(tmp_path: Path) -> None:
    """Content decides, not modification times (a fresh checkout or a copy into a pod has new
    mtimes, and the operator and the RayJob must compute the same key)."""
    spec = demo_copy(tmp_path)
    before = curate_key(spec)
    for path in (tmp_path / "data").rglob("*"):
        os.utime(path, (1, 1))
    assert curate_key(spec) == before


def test_a_new_file_matching_a_glob_changes_the_key(tmp_path: Path) -> None:
    spec = demo_copy(tmp_path)
    before = curate_key(spec)
    folder = tmp_path / "data" / "authored"
    shutil.copy(next(folder.glob("*.jsonl")), folder / "zz-extra.jsonl")
    assert curate_key(spec) != before


def test_s3_sources_are_fingerprinted_by_etag_and_downloads_refreshed(
    s3cfg, tmp_path: Path, monkeypatch
) -> None:
    backend = s3_backend(s3cfg, "sources-fp")
    local = next((REPO / "examples" / "data" / "authored").glob("*.jsonl"))
    backend.put_file("authored/a.jsonl", local)
    for name, value in s3cfg.model_dump().items():
        if value is not None and name.startswith("s3_"):
            raw = value.get_secret_value() if hasattr(value, "get_secret_value") else value
            monkeypatch.setenv(f"LIMA_{name.upper()}", str(raw))
    spec = demo_copy(tmp_path, authored="s3://sources-fp/authored/*.jsonl")
    before = curate_key(spec)
    copy = localize_uri("s3://sources-fp/authored/a.jsonl", tmp_path / "scratch", s3cfg)
    assert copy.read_bytes() == local.read_bytes()

    changed = local.read_bytes().replace(b"a", b"b", 1)
    backend.put_bytes("authored/a.jsonl", changed)
    assert curate_key(spec) != before
    again = localize_uri("s3://sources-fp/authored/a.jsonl", tmp_path / "scratch", s3cfg)
    assert again == copy and again.read_bytes() == changed  # not the stale download


def test_an_s3_key_cannot_download_outside_the_scratch_folder(s3cfg, tmp_path: Path) -> None:
    import pytest

    from lima.errors import SourceError

    with pytest.raises(SourceError, match="leaves the download folder"):
        localize_uri("s3://b-x/../../../etc/passwd", tmp_path / "scratch", s3cfg)


def test_s3_evaluation_sets_are_fingerprinted_by_etag(s3cfg, tmp_path: Path, monkeypatch) -> None:
    """An evaluation set (a generate prompt set, a decontamination extra set) on S3 enters the
    curate key by its ETag, and the prompt set the generate key: a changed object at the same
    URI is decontaminated against and answered again, never served from the old artifacts."""
    backend = s3_backend(s3cfg, "evalsets-fp")
    questions = (REPO / "examples" / "data" / "eval" / "vicuna_question.jsonl").read_bytes()
    backend.put_bytes("eval/vicuna.jsonl", questions)
    backend.put_bytes("eval/extra.jsonl", questions)
    for name, value in s3cfg.model_dump().items():
        if value is not None and name.startswith("s3_"):
            raw = value.get_secret_value() if hasattr(value, "get_secret_value") else value
            monkeypatch.setenv(f"LIMA_{name.upper()}", str(raw))
    spec = demo_copy(tmp_path)
    document = yaml.safe_load(spec.read_text())
    document["spec"]["generate"]["prompt_sets"][1]["uri"] = "s3://evalsets-fp/eval/vicuna.jsonl"
    document["spec"]["data"]["decontamination"] = {
        "extra_sets": [{"name": "extra", "uri": "s3://evalsets-fp/eval/extra.jsonl"}]
    }
    spec.write_text(yaml.safe_dump(document))

    def keys() -> tuple[str, str]:
        experiment = load_experiment(spec)
        return curate_key(spec), dag.generate_config(experiment)["prompt_sets"][1]["content"]

    before = keys()
    assert keys() == before  # stable
    same_size = questions.replace(b"time management", b"time budgeting!", 1)
    assert len(same_size) == len(questions)
    backend.put_bytes("eval/vicuna.jsonl", same_size)
    after = keys()
    assert after[0] != before[0] and after[1] != before[1]
    backend.put_bytes("eval/extra.jsonl", same_size)  # a decontamination-only set
    assert keys()[0] != after[0]
