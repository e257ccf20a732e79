"""`lima plan` / `lima run --dry-run`: which stages would run, and why.

Walks the stage graph once (`lima.dag.plan`) against the store, checks every cached artifact
cheaply (present, sizes match), and explains every stage that would run by comparing its
config and inputs with those of the artifact the experiment's latest run used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lima.errors import StoreError
from lima.store.artifacts import ArtifactStore, Manifest


@dataclass
class PlanLine:
    stage: str
    action: str
    """"cached" | "run" | "run after inputs" | "shared" (a sweep: an earlier variant runs it)"""
    key: str | None
    reason: str
    variant: str | None = None
    """The sweep variant whose stage this is (None: a plain Experiment, or the comparison)."""

    @property
    def label(self) -> str:
        """`stage`, or `variant/stage` in a sweep."""
        return f"{self.variant}/{self.stage}" if self.variant else self.stage

    def text(self, width: int = 9) -> str:
        """The line, its label padded to `width` (the longest label of a listing)."""
        key = f" {self.key[:12]}" if self.key else ""
        return f"{self.label:<{width}} {self.action:<17}{key}  {self.reason}"

    def __str__(self) -> str:
        return self.text()


def plan_lines(
    experiment: Any,
    store: ArtifactStore,
    *,
    force_stages: Sequence[str] = (),
    force_all: bool = False,
    stages: Sequence[Any] | None = None,
) -> list[PlanLine]:
    """One line per stage of the graph (`stages`: another graph, for tests)."""
    from lima import dag

    def forced(stage: Any) -> bool:
        return force_all or stage.name in force_stages

    previous = _previous_manifests(store, experiment.metadata.name)
    cached: dict[str, Manifest] = {}
    lines: list[PlanLine] = []
    graph = stages if stages is not None else dag.GRAPH
    for planned in dag.plan(experiment, store, graph, ignore_cache=forced):
        stage = planned.stage
        if planned.key is None:
            waiting = [name for name in stage.inputs if name not in cached]
            lines.append(
                PlanLine(stage.name, "run after inputs", None, f"needs {', '.join(waiting)} first")
            )
            continue
        if planned.manifest is not None:
            line = _cached_line(store, stage.name, planned.key, planned.manifest)
            if line.action == "cached":
                cached[stage.name] = planned.manifest
            lines.append(line)
            continue
        inputs = {name: cached[name] for name in stage.inputs if name in cached}
        before = previous.get(stage.name)
        why = "forced" if forced(stage) else _why(stage, planned.key, experiment, inputs, before)
        lines.append(PlanLine(stage.name, "run", planned.key, why))
    return lines


def _cached_line(store: ArtifactStore, stage: str, key: str, manifest: Manifest) -> PlanLine:
    try:
        problems = store.problems(manifest)
    except StoreError as error:
        problems = [str(error)]
    if problems:
        return PlanLine(stage, "run", key, f"cached artifact is damaged: {problems[0]}")
    return PlanLine(stage, "cached", key, f"{len(manifest.objects)} objects, {manifest.size:,} B")


def _previous_manifests(store: ArtifactStore, experiment: str) -> dict[str, Manifest]:
    """The artifacts of the latest run of this experiment that reached each stage."""
    found: dict[str, Manifest] = {}
    for record in reversed(store.runs(experiment)):
        for entry in record.get("stages", []):
            name, key = entry.get("stage"), entry.get("key")
            if name in found or not key or entry.get("status") not in ("done", "cached"):
                continue
            try:
                manifest = store.manifest(name, key)
            except StoreError:
                continue
            if manifest is not None:
                found[name] = manifest
    return found


def _why(
    stage: Any, key: str, experiment: Any, inputs: dict[str, Manifest], before: Manifest | None
) -> str:
    """What differs from the artifact this experiment used last time at this stage."""
    if before is None:
        return "never computed for this experiment"
    if before.key == key:
        return "artifact missing from the store"
    reasons = []
    if before.code_version != stage.version:
        reasons.append(f"code version {before.code_version} -> {stage.version}")
    changed = _changed_paths(before.config, _json(stage.config(experiment)))
    if changed:
        more = f" (+{len(changed) - 4} more)" if len(changed) > 4 else ""
        reasons.append(f"config changed: {', '.join(changed[:4])}{more}")
    used = {ref.stage: ref.digest for ref in before.inputs}
    for name, manifest in inputs.items():
        if used.get(name) != manifest.digest:
            reasons.append(f"input {name} changed")
    return "; ".join(reasons) or "key changed"


def _json(value: Any) -> Any:
    import json

    from lima.store.artifacts import canonical_json

    return json.loads(canonical_json(value))


def _changed_paths(old: Any, new: Any, path: str = "") -> list[str]:
    """Dotted paths where two JSON values differ (`data.sources[2].uri`, `source_files.x`)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for name in sorted(set(old) | set(new)):
            out += _changed_paths(old.get(name), new.get(name), f"{path}.{name}" if path else name)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            out += _changed_paths(a, b, f"{path}[{index}]")
        return out
    return [] if old == new else [path or "(all)"]
