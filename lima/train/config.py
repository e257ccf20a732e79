"""What the driver hands every training worker: one typed object (pickled across the Ray
boundary), built by `lima.train.launch.loop_config`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lima.spec.model import ModelSpec
from lima.spec.train import TrainSpec
from lima.train.callbacks import LoopCallback

EncodedExamples = list[tuple[list[int], list[int]]]
"""(input_ids, labels) per example."""


@dataclass(frozen=True)
class BaseFiles:
    """The base model as the workers get it."""

    digest: str
    """Names the workers' local copy, so a restarted worker reuses it."""
    tokenizer_files: Any
    """Ray object ref (or a plain dict) of {file name: bytes}: the tokenizer with chat tokens."""
    model_files: Any = None
    """Same for the weights when small enough to ship; None: each worker resolves the base."""


@dataclass(frozen=True)
class RunStorage:
    filesystem: Any
    """pyarrow filesystem of the artifact store."""
    path: str
    """This run's folder (`<prefix>/train-runs/<key folder>/<run id>`)."""
    key_path: str | None = None
    """The key folder holding every run of the key: a resume may start from their checkpoints
    (None: only from this run's own, e.g. a forced run)."""
    connection: Any = None
    """`lima.store.S3Connection` of an S3 store (None: the local store): the workers' checkpoint
    uploader (`lima.train.upload`) writes through the store's one S3 layer with it."""

    def backend(self) -> tuple[Any, str]:
        """(store backend, key of the run folder in it) for the checkpoint uploader."""
        from pathlib import Path

        from lima.store.backends import FileBackend
        from lima.store.s3 import S3Backend

        if self.connection is None:
            return FileBackend(Path(self.path)), ""
        bucket, _, key = self.path.partition("/")
        return S3Backend(self.connection, bucket), key


@dataclass(frozen=True)
class LoopConfig:
    model: ModelSpec
    train: TrainSpec
    """Resolved recipe: batch size and dropout are filled (`lima.train.recipe.resolve`)."""
    ds_config: dict[str, Any]
    accumulation: int
    pad_id: int
    base: BaseFiles
    examples: Any
    """Ray object ref (or a plain list) of the encoded training examples."""
    dev_examples: Any
    storage: RunStorage
    callbacks: tuple[LoopCallback, ...] = field(default_factory=tuple)

    @property
    def residual_dropout(self) -> float:
        assert self.train.residual_dropout is not None, "recipe not resolved"
        return self.train.residual_dropout
