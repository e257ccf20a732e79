"""What an Experiment must satisfy to run on a cluster, beyond the spec's own validation.

Ray pods read their inputs from the artifact store: a path of the laptop that wrote the file
(`examples/data/...`, `/home/me/...`) does not exist there, and the stage would fail only after
its cluster came up. The operator refuses such an Experiment up front (phase Invalid) with one
message per field. `lima data push` copies a local folder to `s3://` (see docs/kubernetes.md).
"""

from __future__ import annotations

from lima.spec import Experiment

REMOTE = ("s3://",)
NOT_A_FILE = ("curated:",)  # the curate stage's own splits
_PATH_START = ("/", ".", "~", "file://")


def _local(uri: str) -> bool:
    return not uri.startswith(REMOTE + NOT_A_FILE)


def _local_model(location: str) -> bool:
    """`tiny`, a hub id (`org/name`) and s3:// are fine; a filesystem path is not."""
    return location.startswith(_PATH_START)


def local_path_problems(experiment: Experiment) -> list[str]:
    """Every field that names a local path, as `<field>: ...` messages (empty: cluster-ready)."""
    spec = experiment.spec
    found: list[tuple[str, str]] = [
        (f"spec.data.sources[{i}].uri", s.uri)
        for i, s in enumerate(spec.data.sources)
        if _local(s.uri)
    ]
    found += [
        (f"spec.generate.prompt_sets[{i}].uri", p.uri)
        for i, p in enumerate(spec.generate.prompt_sets)
        if _local(p.uri)
    ]
    for i, baseline in enumerate(spec.judge.baselines):
        if baseline.answers and _local(baseline.answers):
            found.append((f"spec.judge.baselines[{i}].answers", baseline.answers))
        if baseline.model and _local_model(baseline.model):
            found.append((f"spec.judge.baselines[{i}].model", baseline.model))
    for name in ("base", "tokenizer"):
        location = getattr(spec.model, name)
        if location and _local_model(location):
            found.append((f"spec.model.{name}", location))
    return [
        f"{where}: {value!r} is a local path, which Ray pods cannot read; use an s3:// URI "
        f"(copy the files with `lima data push <folder> s3://<bucket>/<prefix>`)"
        for where, value in found
    ]
