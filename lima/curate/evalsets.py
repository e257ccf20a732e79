"""The evaluation sets curation decontaminates against, and their identity in the curate key.

They are `spec.data.decontamination.extra_sets` plus (with `generate_sets: true`) every prompt set
of the generate stage that is not one of the curate stage's own splits (`curated:dev/test`, which
are decontaminated as dev and test anyway). Files are read with the generate stage's reader, so
curation sees exactly the prompts that will be answered (all of them: a prompt set's `limit` only
shortens what is answered, and decontaminating against more is safe).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lima.spec.data import DataSpec, EvalSet

log = logging.getLogger("lima.curate")

SPLITS = ("dev", "test")
CURATED = "curated:"


@dataclass
class LoadedSet:
    name: str
    uri: str
    prompts: list[Any]
    """lima.generation.prompt_sets.PromptRecord: `id`, user `turns`, `references`."""


def effective_data(spec: Any) -> DataSpec:
    """`spec.data` with the generate stage's prompt sets added to the decontamination sets.

    `spec` is an ExperimentSpec; the curate stage runs on (and its key covers) this DataSpec.
    """
    data: DataSpec = spec.data
    decon = data.decontamination
    if not decon.generate_sets:
        return data
    sets = list(decon.extra_sets)
    names = {s.name for s in sets} | set(SPLITS)
    uris = {s.uri for s in sets}
    for prompt_set in spec.generate.prompt_sets:
        if prompt_set.uri.startswith(CURATED) or prompt_set.uri in uris:
            continue
        name = prompt_set.name if prompt_set.name not in names else f"generate-{prompt_set.name}"
        sets.append(EvalSet(name=name, uri=prompt_set.uri))
        names.add(name)
        uris.add(prompt_set.uri)
    return data.model_copy(
        update={"decontamination": decon.model_copy(update={"extra_sets": sets})}
    )


def fingerprints(data: DataSpec, settings: Any = None) -> dict[str, Any]:
    """What each evaluation file holds now, so a changed set changes the curate key: sha256 of a
    local file, the store's fingerprint (size and ETag, `fingerprint_uri`) of an s3:// one."""
    from lima.store.sources import fingerprint_uri

    out: dict[str, Any] = {}
    for eval_set in data.decontamination.extra_sets:
        if eval_set.uri.startswith("s3://"):
            if settings is None:
                from lima.settings import load_settings

                settings = load_settings()
            out[eval_set.name] = fingerprint_uri(eval_set.uri, settings)
            continue
        path = Path(eval_set.uri.removeprefix("file://"))
        if path.is_file():
            out[eval_set.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def load(data: DataSpec, settings: Any, scratch: Path) -> list[LoadedSet]:
    """Every evaluation set's prompts; a missing file is a SourceError before any work starts,
    a malformed row a warning naming file and line (the generate stage rejects it too)."""
    from lima.generation.prompt_sets import read_prompt_file, resolve_prompt_file

    if not data.decontamination.enabled:
        return []
    loaded = []
    for eval_set in data.decontamination.extra_sets:
        path = resolve_prompt_file(eval_set.uri, None, scratch / "eval-sets", settings)
        prompts, rejected = read_prompt_file(path)
        for row in rejected:
            log.warning(
                "evaluation set %s: %s (not used for decontamination)", eval_set.name, row.reason
            )
        loaded.append(LoadedSet(eval_set.name, eval_set.uri, prompts))
    return loaded
