"""Run records read back for `lima status`, `lineage`, `report` and `diff`.

A run record (written by the runner into `<prefix>/runs/<experiment>/<run_id>.json`) lists each
stage's status, key, duration and error. Here it becomes plain dicts (what `--output json`
prints) and the short forms the terminal shows: `curate/3f2a9c1b04de` instead of a full URI.
"""

from __future__ import annotations

from typing import Any

from lima.errors import LimaError

SHORT_KEY = 12


def short_id(stage: str, key: str) -> str:
    """`stage/<first 12 of the key>`: enough to tell artifacts apart, short enough for a line."""
    return f"{stage}/{key[:SHORT_KEY]}" if key else ""


def run_status(record: dict[str, Any]) -> str:
    if record.get("interrupted"):
        return "interrupted"
    statuses = [s.get("status") for s in record.get("stages", [])]
    if "failed" in statuses:
        return "failed"
    return "succeeded"


def stage_view(entry: dict[str, Any]) -> dict[str, Any]:
    key = entry.get("key") or ""
    status = entry.get("status", "")
    return {
        "stage": entry.get("stage", ""),
        "status": status,
        "cache_hit": status == "cached",
        "duration_s": entry.get("duration_s", 0.0),
        "artifact": short_id(entry.get("stage", ""), key) if status in ("done", "cached") else "",
        "key": key,
        "uri": entry.get("uri", ""),
        "error": entry.get("message", "") if status in ("failed", "interrupted") else "",
    }


def run_view(record: dict[str, Any]) -> dict[str, Any]:
    """The record as `lima status --output json` shows it; `outcome` is what the run found
    (`lima.console.summary.findings`: selected epoch, any selection fallback, whether the judge
    is the proxy, the headline, curation's shortfalls and contamination removals)."""
    from lima.console.summary import findings

    stages = [stage_view(s) for s in record.get("stages", [])]
    return {
        "run_id": record.get("run_id", ""),
        "experiment": record.get("experiment", ""),
        "started_at": record.get("started_at", ""),
        "ended_at": record.get("ended_at", ""),
        "status": run_status(record),
        "single_stage": record.get("single_stage"),
        "duration_s": round(sum(s["duration_s"] or 0 for s in stages), 3),
        "cache_hits": sum(s["cache_hit"] for s in stages),
        "stages": stages,
        "outcome": findings(
            {
                s.get("stage", ""): s.get("summary")
                for s in record.get("stages", [])
                if s.get("status") in ("done", "cached")
            }
        ),
    }


def find_run(store: Any, run_id: str, experiment: str | None = None) -> dict[str, Any]:
    """The record whose id is `run_id` or starts with it (unique); LimaError (exit 2) if none."""
    records = store.runs(experiment)
    exact = [r for r in records if r.get("run_id") == run_id]
    matches = exact or [r for r in records if str(r.get("run_id", "")).startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    where = f" of experiment {experiment!r}" if experiment else ""
    if not matches:
        raise LimaError(f"no run {run_id!r}{where} (`lima status` lists the runs)")
    ids = ", ".join(r["run_id"] for r in matches[:5])
    raise LimaError(f"run id {run_id!r} is ambiguous: {ids}")


def latest_run(store: Any, experiment: str) -> dict[str, Any]:
    records = store.runs(experiment)
    if not records:
        raise LimaError(f"no runs recorded for experiment {experiment!r}")
    return records[-1]


def lineage_view(store: Any, record: dict[str, Any]) -> dict[str, Any]:
    """The run's artifacts with their digests and inputs, stage by stage (each one checked
    against its manifest first: `lima.store.verify.verify_served`)."""
    from lima.store.verify import verify_served

    stages = []
    for entry in record.get("stages", []):
        view = stage_view(entry)
        manifest = store.manifest(entry["stage"], entry["key"]) if entry.get("key") else None
        if manifest is not None and view["status"] in ("done", "cached"):
            verify_served(store, manifest)  # IntegrityError naming the damaged object
            view.update(
                uri=manifest.uri,
                digest=manifest.digest,
                objects=len(manifest.objects),
                size=manifest.size,
                code_version=manifest.code_version,
                inputs=[
                    {"stage": i.stage, "key": i.key, "digest": i.digest, "uri": i.uri}
                    for i in manifest.inputs
                ],
            )
        stages.append(view)
    return {**run_view(record), "stages": stages}


def diff_runs(first: dict[str, Any], second: dict[str, Any]) -> list[dict[str, Any]]:
    """Per stage: both runs' keys and statuses, and whether the artifact differs."""
    a = {s["stage"]: s for s in run_view(first)["stages"]}
    b = {s["stage"]: s for s in run_view(second)["stages"]}
    rows = []
    for stage in [*a, *(s for s in b if s not in a)]:
        left, right = a.get(stage, {}), b.get(stage, {})
        rows.append(
            {
                "stage": stage,
                "a": {"status": left.get("status", "absent"), "key": left.get("key", "")},
                "b": {"status": right.get("status", "absent"), "key": right.get("key", "")},
                "same_artifact": bool(left.get("key")) and left.get("key") == right.get("key"),
                "summary_changes": _summary_changes(first, second, stage),
            }
        )
    return rows


def _summary_changes(first: dict[str, Any], second: dict[str, Any], stage: str) -> dict[str, Any]:
    """Top-level summary fields whose values differ between the runs (numbers worth a look)."""

    def summary(record: dict[str, Any]) -> dict[str, Any]:
        for entry in record.get("stages", []):
            if entry.get("stage") == stage:
                return entry.get("summary") or {}
        return {}

    left, right = summary(first), summary(second)
    return {
        field: [left.get(field), right.get(field)]
        for field in sorted(set(left) | set(right))
        if left.get(field) != right.get(field)
    }
