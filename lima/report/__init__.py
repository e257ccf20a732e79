"""The report: HTML + PNG figures of a whole experiment, and where to find the latest one.

- `collect.collect(...)`: the numbers (from the curate, train, select, generate, judge artifacts).
- `figures.draw_all(data, out_dir)`: the PNGs (matplotlib, Agg backend).
- `render.render(data, figures, out_dir)`: `report.html` from `templates/report.html.j2`.
- `locate(store, experiment)`: the path/URI of the latest report, for `lima report EXPERIMENT`.
"""

from __future__ import annotations

from typing import Any

from lima.errors import LimaError

REPORT_FILE = "report.html"
STAGE_NAME = "report"


def _as_path(uri: str) -> str:
    """A local file path for `file://` URIs (what a user opens), other URIs unchanged."""
    if not uri.startswith("file:"):
        return uri
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(uri).path)


def locate(store: Any, experiment: str) -> str:
    """Local path (file store) or s3:// URI of `report.html` in the newest run of `experiment` that produced a report."""
    for record in reversed(store.runs(experiment)):
        for stage in record.get("stages", []):
            if stage.get("stage") != STAGE_NAME or stage.get("status") not in {"done", "cached"}:
                continue
            manifest = store.manifest(STAGE_NAME, stage["key"])
            if manifest is not None:
                return _as_path(store.backend.uri(manifest.object(REPORT_FILE).key))
    raise LimaError(
        f"no report for experiment {experiment!r} yet; run `lima run` on it first "
        "(the report is the last stage)"
    )
