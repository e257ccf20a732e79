"""What a stage's run function is given: the StageContext.

The graph itself (names, versions, inputs, keys) is lima.dag. A stage reads its inputs'
artifacts (materialised locally on demand), writes files into `ctx.output_dir`, and returns its
typed result (lima.results). The runner publishes the folder as one content-addressed artifact;
the stage never talks to the store about its own output.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lima.settings import Settings
from lima.spec import Experiment, StageResources
from lima.store import ArtifactStore, Manifest

log = logging.getLogger("lima.stage")


class ProgressSink(Protocol):
    """Where a stage reports progress; the CLI draws a rich bar, tests collect calls."""

    def __call__(
        self, *, completed: float | None = None, total: float | None = None, note: str | None = None
    ) -> None: ...


def _no_progress(**_: Any) -> None:
    return None


@dataclass
class StageContext:
    experiment: Experiment
    settings: Settings
    store: ArtifactStore
    inputs: dict[str, Manifest]
    output_dir: Path
    scratch_dir: Path
    key: str
    stage: str
    progress: ProgressSink = _no_progress
    forced: bool = False
    """The user asked to recompute (`--force`): stages must not resume earlier partial work."""
    run_id: str = ""
    """The runner's run id (names the train stage's run folder); "" outside a run."""

    @property
    def spec(self):
        return self.experiment.spec

    @property
    def resources(self) -> StageResources:
        return getattr(self.experiment.spec.resources, self.stage, StageResources())

    def input_dir(self, name: str, paths: list[str] | None = None) -> Path:
        """A local folder holding the named input artifact (downloaded and verified once)."""
        manifest = self.inputs[name]
        dest = self.scratch_dir / "inputs" / name / manifest.key
        self.store.fetch(manifest, dest, paths)
        return dest

    def input_file(self, name: str, path: str) -> Path:
        return self.input_dir(name, [path]) / path
