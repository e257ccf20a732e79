"""Session fixtures of the generation / evaluation tests (loaded with `pytest_plugins`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_helpers import build_model


@pytest.fixture(scope="session")
def tuned_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset fine-tuned until it answers QA and stops at EOT."""
    return build_model(tmp_path_factory.mktemp("tuned") / "model", steps=60)


@pytest.fixture(scope="session")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same preset before fine-tuning (random weights)."""
    return build_model(tmp_path_factory.mktemp("base") / "model", steps=0)
