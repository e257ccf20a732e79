"""The whole curation, as the stage runs it: filter + dedup as Ray tasks, then assemble."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from lima.curate.assemble import assemble
from lima.curate.evalsets import load as load_eval_sets
from lima.curate.pipeline import Progress, filter_and_dedup
from lima.curate.shards import expand_sources
from lima.settings import Settings
from lima.spec.data import DataSpec


def curate(
    spec: DataSpec,
    out_dir: Path,
    *,
    settings: Settings | None = None,
    scratch: Path | None = None,
    workers: int = 1,
    cpus: float = 1,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write train/dev/test.jsonl, stats.json and rejected.jsonl into `out_dir`; return stats."""
    expand_sources(spec, settings)  # a missing source fails here, before any work or output
    # Downloads of s3:// sources go to scratch, never into the published output folder.
    scratch = scratch or Path(tempfile.gettempdir()) / "lima-curate"
    eval_sets = load_eval_sets(spec, settings, scratch)  # decontamination targets, also early
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "rejected.jsonl").open("wb") as rejected:
        filtered = filter_and_dedup(
            spec, settings, scratch, rejected, workers=workers, cpus=cpus, progress=progress
        )
        if progress:
            progress(note="selecting")
        report = assemble(
            spec,
            filtered.docs,
            filtered.stats,
            rejected,
            out_dir,
            eval_sets,
            duplicates=filtered.duplicates,
        )
    with (out_dir / "rejected.jsonl").open("rb") as handle:
        report["totals"]["rejected_rows"] = sum(1 for _ in handle)
    return report
