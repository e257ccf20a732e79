"""`lima init`: a runnable experiment folder to start from (an Experiment file and tiny data)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from lima.errors import LimaError

TEMPLATES = Path(__file__).parent / "templates"
EXPERIMENT_FILE = "experiment.yaml"
DATA_FILE = Path("data") / "examples.jsonl"


def experiment_name(folder: Path) -> str:
    """A DNS-1035 label from the folder's name (what `metadata.name` must be)."""
    name = re.sub(r"[^a-z0-9-]+", "-", folder.resolve().name.lower()).strip("-")
    name = re.sub(r"^[^a-z]+", "", name)[:30].rstrip("-")
    return name or "my-experiment"


def scaffold(folder: Path, name: str | None = None, *, force: bool = False) -> list[Path]:
    """Write `experiment.yaml` and `data/examples.jsonl` into `folder`; refuse to overwrite."""
    targets = [folder / EXPERIMENT_FILE, folder / DATA_FILE]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:
        raise LimaError(f"{', '.join(existing)} already exist(s); use --force to overwrite")
    (folder / DATA_FILE).parent.mkdir(parents=True, exist_ok=True)
    text = (TEMPLATES / EXPERIMENT_FILE).read_text(encoding="utf-8")
    targets[0].write_text(text.format(name=name or experiment_name(folder)), encoding="utf-8")
    shutil.copyfile(TEMPLATES / DATA_FILE, targets[1])
    return targets
