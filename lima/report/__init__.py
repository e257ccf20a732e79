"""The report: HTML + PNG figures of a whole experiment, and where to find the latest one.

- `collect.collect(...)`: the numbers (from the curate, train, select, generate, judge artifacts).
- `figures.draw_all(data, out_dir)`: the PNGs (matplotlib, Agg backend).
- `render.render(data, figures, out_dir)`: `report.html` from `templates/report.html.j2`.
- `locate(store, experiment)`: the path/URI of the latest report, for `lima report EXPERIMENT`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lima.errors import LimaError

REPORT_FILE = "report.html"
STAGE_NAME = "report"
PAGES = {STAGE_NAME: REPORT_FILE, "compare": "compare.html"}
"""The page to open per artifact: an Experiment's report, or a sweep's comparison."""


def _as_path(uri: str) -> str:
    """A local file path for `file://` URIs (what a user opens), other URIs unchanged."""
    if not uri.startswith("file:"):
        return uri
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(uri).path)


def locate(store: Any, experiment: str, dest: Path | None = None) -> str:
    """Where to open `report.html` of the newest run of `experiment` that produced a report.

    A file store gives the local path of the stored page (its PNGs sit next to it). With an S3
    store the `s3://` URI is returned, unless `dest` is given: then the whole report artifact
    (HTML and figures, sha256-verified) is downloaded to `dest/<key>/` and that path returned.
    """
    for record in reversed(store.runs(experiment)):
        where = locate_in_run(store, record, dest)
        if where is not None:
            return where
    raise LimaError(
        f"no report for experiment {experiment!r} yet; run `lima run` on it first "
        "(the report is the last stage)"
    )


def locate_in_run(store: Any, record: dict[str, Any], dest: Path | None = None) -> str | None:
    """Like `locate`, for one run record (None when that run produced no report)."""
    for stage in record.get("stages", []):
        page = PAGES.get(stage.get("stage"))
        if page is None or stage.get("status") not in {"done", "cached"}:
            continue
        manifest = store.manifest(stage["stage"], stage["key"])
        if manifest is None:
            continue
        # Never hand out a page that is not the one published (a flipped byte, a lost figure):
        # the report artifact is small, so every object is hashed against its manifest.
        store.verify(manifest, deep=True)
        where = _as_path(store.backend.uri(manifest.object(page).key))
        if dest is None or Path(where).is_file():
            return where
        folder = store.fetch(manifest, Path(dest) / manifest.key)
        return str(folder / page)
    return None
