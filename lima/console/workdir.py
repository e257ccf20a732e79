"""Where `lima` keeps local artifacts and logs: found upward like `.git`, not in the shell's cwd.

Order: `LIMA_WORK_DIR` (environment or `.env`) wins; otherwise the nearest existing `.lima/`
folder above the starting point; otherwise `.lima/` at the root of the enclosing git repository;
otherwise `.lima/` in the starting folder. The starting point is the Experiment file's folder
when a command names one, else the current directory; so `lima status` from `docs/` finds the
runs that `lima run examples/experiment.yaml` recorded at the repository root.
"""

from __future__ import annotations

import os
from pathlib import Path

from lima.settings import Settings, load_settings

WORK_DIR_NAME = ".lima"


def find_work_dir(start: Path) -> Path:
    start = start.resolve()
    folders = [start, *start.parents]
    for folder in folders:
        if (folder / WORK_DIR_NAME).is_dir():
            return folder / WORK_DIR_NAME
    for folder in folders:
        if (folder / ".git").exists():
            return folder / WORK_DIR_NAME
    return start / WORK_DIR_NAME


def start_folder(experiment: str | None) -> Path:
    """The Experiment file's folder when `experiment` names a local file, else the cwd."""
    if experiment and not experiment.startswith("s3://"):
        path = Path(experiment)
        if path.is_file():
            return path.resolve().parent
    return Path.cwd()


def cli_settings(experiment: str | None = None) -> Settings:
    """Settings with the work directory resolved; exported as `LIMA_WORK_DIR` so every later
    `load_settings()` (the report locator, Ray workers started after this) agrees."""
    settings = load_settings()
    if "work_dir" in settings.model_fields_set:
        work = settings.work_dir.expanduser().resolve()
    else:
        work = find_work_dir(start_folder(experiment))
    os.environ["LIMA_WORK_DIR"] = str(work)
    return settings.model_copy(update={"work_dir": work})
