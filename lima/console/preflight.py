"""The checks that `lima validate` and `lima run` make before Ray starts.

A run that would fail an hour in (a glob that matches nothing, `backend: openai` without an
endpoint, a model missing from the offline cache, a stage that asks more CPUs than Ray has)
fails here in a second instead, naming the spec field. `offline=True` skips every check that
needs the network (s3:// listings, the Hugging Face hub, the judge endpoint).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lima.errors import LimaError
from lima.settings import Settings
from lima.spec import Experiment

TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Finding:
    field: str
    message: str
    error: bool = True

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def preflight(
    experiment: Experiment, settings: Settings, *, offline: bool, local_run: bool
) -> list[Finding]:
    """Every problem found. `local_run`: resources that exceed this machine are errors (the
    run would wait forever); for `validate` they are warnings, the file may be for a cluster."""
    checks: list[Callable[[Experiment, Settings, bool], Iterator[Finding]]] = [
        _sources,
        _prompt_files,
        _models,
        _judge,
        _train_recipe,
        _split_capacity,
    ]
    found = [finding for check in checks for finding in check(experiment, settings, offline)]
    for finding in _local_resources(experiment, settings):
        found.append(finding if local_run else Finding(finding.field, finding.message, False))
    return found


def _matches(uri: str, settings: Settings, offline: bool) -> str | None:
    """Why `uri` names no file (None when it does, or when checking it needs the network)."""
    from lima.store import expand_uri

    if uri.startswith("s3://") and offline:
        return None
    try:
        expand_uri(uri, settings)
    except LimaError as error:
        return str(error)
    return None


def _sources(experiment: Experiment, settings: Settings, offline: bool) -> Iterator[Finding]:
    for index, source in enumerate(experiment.spec.data.sources):
        problem = _matches(source.uri, settings, offline)
        if problem:
            yield Finding(f"spec.data.sources[{index}].uri", f"{problem} ({source.name})")


def _split_capacity(experiment: Experiment, settings: Settings, offline: bool) -> Iterator[Finding]:
    """dev + test larger than what the sources can give beyond their quotas: held-out prompts
    only come from the surplus (lima.curate.splits), so the splits would come out short. The
    count is an upper bound of the usable rows (lines, `<row`s of questions, task files),
    read in a few ms per MiB; a source that is not a local file (s3://) is not counted, and
    then nothing is claimed."""
    data = experiment.spec.data
    wanted = data.splits.dev + data.splits.test
    if wanted == 0:
        return
    surplus, counts = 0, []
    for source in data.sources:
        bound = _usable_rows_bound(source, data, settings)
        if bound is None:
            return
        surplus += max(0, bound - source.quota)
        counts.append(f"{source.name} {bound} (quota {source.quota})")
    if wanted > surplus:
        yield Finding(
            "spec.data.splits",
            f"dev {data.splits.dev} + test {data.splits.test} = {wanted} held-out prompts, but "
            f"the sources have at most {surplus} rows beyond their training quotas "
            f"(at most: {', '.join(counts)}); held-out prompts never take training rows, "
            "so lower dev/test or the quotas, or add data",
        )


def _usable_rows_bound(source, data, settings: Settings) -> int | None:
    """At least as many as the rows the source can yield; None when not cheaply countable."""
    from lima.curate.readers.stackexchange import group_of, site_of
    from lima.spec.data import SourceKind
    from lima.store import expand_uri

    if source.uri.startswith("s3://"):
        return None
    try:
        files = expand_uri(source.uri, settings)
    except LimaError:
        return None  # reported by _sources
    total = 0
    for uri in files:
        path = Path(uri.removeprefix("file://"))
        if source.kind is SourceKind.natural_instructions:
            total += 1  # one instance per task file (LIMA 2.1)
        elif source.kind is SourceKind.stackexchange:
            site = site_of(uri, source.site)
            if source.group == "all" or group_of(site, data.filters.stackexchange) == source.group:
                total += _count(path, b"<row")  # every post: a bound whatever the quoting
        elif source.kind is SourceKind.writingprompts and path.suffix == ".wp_target":
            continue  # read with its .wp_source
        else:  # JSONL, CSV (wikiHow, WritingPrompts), .wp_source: at most one row per line
            total += _count(path, b"\n", trailing=True)
    return total


def _count(path: Path, needle: bytes, *, trailing: bool = False) -> int:
    """Occurrences of `needle` in the file, read 1 MiB at a time; `trailing`: plus one for a
    last line without its newline."""
    count, carry, last = 0, b"", b""
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                window = carry + chunk
                count += window.count(needle)
                carry = window[len(window) - len(needle) + 1 :] if len(needle) > 1 else b""
                last = chunk[-1:]
    except OSError:
        return 0
    return count + (1 if trailing and last and last != b"\n" else 0)


def _prompt_files(experiment: Experiment, settings: Settings, offline: bool) -> Iterator[Finding]:
    spec = experiment.spec
    for index, prompt_set in enumerate(spec.generate.prompt_sets):
        if prompt_set.uri.startswith("curated:"):
            if prompt_set.uri not in ("curated:dev", "curated:test"):
                yield Finding(
                    f"spec.generate.prompt_sets[{index}].uri",
                    f"must be curated:dev or curated:test (got {prompt_set.uri})",
                )
            continue
        problem = _matches(prompt_set.uri, settings, offline)
        if problem:
            yield Finding(f"spec.generate.prompt_sets[{index}].uri", problem)
    for index, baseline in enumerate(spec.judge.baselines):
        if baseline.answers:
            problem = _matches(baseline.answers, settings, offline)
            if problem:
                yield Finding(f"spec.judge.baselines[{index}].answers", problem)


def _models(experiment: Experiment, settings: Settings, offline: bool) -> Iterator[Finding]:
    spec = experiment.spec
    located = [("spec.model.base", spec.model.base)]
    if spec.model.tokenizer and spec.model.base != "tiny":
        located.append(("spec.model.tokenizer", spec.model.tokenizer))
    located += [
        (f"spec.judge.baselines[{i}].model", b.model)
        for i, b in enumerate(spec.judge.baselines)
        if b.model
    ]
    for field, location in located:
        problem = model_problem(location, settings, offline)
        if problem:
            yield Finding(field, problem)


def _train_recipe(experiment: Experiment, settings: Settings, offline: bool) -> Iterator[Finding]:
    """Train resources against the base's size, and GPUs per worker (lima.train.recipe)."""
    from lima.train.recipe import estimate_params, resolve, train_problems

    spec = experiment.spec
    params, _ = estimate_params(spec.model)
    recipe = resolve(spec.train, params)
    for problem in train_problems(spec.resources.train, recipe, params):
        yield Finding("spec.resources.train", problem)


def model_problem(location: str, settings: Settings, offline: bool) -> str | None:
    """Why the model's config cannot be read (None when it can, or it cannot be checked)."""
    from lima.models.presets import PRESETS, TINY, gguf_path

    if location == TINY:
        return None
    if location in PRESETS:  # a pretrained model shipped in a package
        try:
            gguf_path(PRESETS[location])
        except LimaError as error:
            return str(error)
        return None
    if location.startswith("s3://"):
        return None if offline else _s3_model_problem(location, settings)
    path = Path(location.removeprefix("file://")).expanduser()
    if path.is_absolute() or location.startswith((".", "~", "file://")):
        if (path / "config.json").is_file() or (path / "tokenizer_config.json").is_file():
            return None
        return f"{location} is not a Hugging Face model folder (no config.json)"
    if _hub_offline():  # the run itself may only read the cache: so may we
        return _hub_problem(location, local_only=True)
    return None if offline else _hub_problem(location, local_only=False)


def _hub_offline() -> bool:
    return any(
        os.environ.get(name, "").lower() in ("1", "true", "yes", "on")
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _hub_problem(repo_id: str, local_only: bool) -> str | None:
    from huggingface_hub import hf_hub_download

    try:
        hf_hub_download(repo_id, "config.json", local_files_only=local_only)
    except Exception as error:  # the hub raises a dozen kinds; all mean "cannot load"
        if local_only:
            return (
                f"{repo_id} is not in the local Hugging Face cache and the hub is offline "
                "(download it where the network is reachable, or name a local folder)"
            )
        return f"{repo_id}: cannot read its config.json from the hub ({type(error).__name__})"
    return None


def _s3_model_problem(location: str, settings: Settings) -> str | None:
    from lima.store import expand_uri

    try:
        expand_uri(location.rstrip("/") + "/config.json", settings)
    except LimaError:
        return f"{location} holds no config.json"
    return None


def _judge(experiment: Experiment, settings: Settings, offline: bool) -> Iterator[Finding]:
    judge = experiment.spec.judge
    backend = judge.backend.value
    if backend == "reference":
        if experiment.spec.model.base != "tiny":
            yield Finding(
                "spec.judge.backend",
                "`reference` is a proxy judge (embedding similarity), not an evaluator: "
                "set `openai` (LIMA_JUDGE_BASE_URL) or `hf` for results worth reporting",
                error=False,
            )
        return
    model = judge.model or settings.judge_model
    if not model:
        yield Finding(
            "spec.judge.model", f"the `{backend}` judge needs a model (or LIMA_JUDGE_MODEL)"
        )
    if backend == "hf":
        problem = model and model_problem(model, settings, offline)
        if problem:
            yield Finding("spec.judge.model", problem)
        return
    if not settings.judge_base_url:
        yield Finding(
            "spec.judge.backend",
            "`openai` needs LIMA_JUDGE_BASE_URL (an OpenAI-compatible endpoint, "
            "e.g. http://vllm:8000/v1)",
        )
    elif not offline:
        problem = _endpoint_problem(settings)
        if problem:
            yield Finding("spec.judge.backend", problem)


def _endpoint_problem(settings: Settings) -> str | None:
    """GET {base}/models: any HTTP answer means the server is there; a refused or timed-out
    connection does not. The API key is sent as a header and never appears in the message."""
    import urllib.error
    import urllib.request

    url = (settings.judge_base_url or "").rstrip("/") + "/models"
    request = urllib.request.Request(url)
    if settings.judge_api_key is not None:
        request.add_header("Authorization", f"Bearer {settings.judge_api_key.get_secret_value()}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S):
            return None
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            return f"the judge endpoint {url} refused the API key (HTTP {error.code})"
        return None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return f"the judge endpoint {url} is unreachable ({reason})"


def _local_resources(experiment: Experiment, settings: Settings) -> Iterator[Finding]:
    """A local Ray has the machine's CPU slots and GPUs; a stage that asks more would wait
    for resources forever. On a cluster (`LIMA_RAY_ADDRESS`) the pools decide instead."""
    from lima.runtime import local_cpu_slots, local_gpus

    if settings.ray_address or os.environ.get("RAY_ADDRESS"):
        return
    slots, gpus = local_cpu_slots(), local_gpus()
    resources = experiment.spec.resources
    for stage in type(resources).model_fields:
        asked = getattr(resources, stage, None)
        if asked is None:
            continue
        where = f"spec.resources.{stage}"
        if asked.cpus * asked.workers > slots:
            yield Finding(
                where,
                f"{asked.workers} workers x {asked.cpus:g} cpus exceed the {slots} CPU slots "
                "of the local Ray (lower workers/cpus, or set LIMA_RAY_ADDRESS)",
            )
        if asked.gpus * asked.workers > gpus:
            yield Finding(
                f"{where}.gpus",
                f"{asked.workers} workers x {asked.gpus} GPUs, but this machine has {gpus}",
            )
