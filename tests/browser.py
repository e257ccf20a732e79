"""Headless Chromium (the Debian package) for tests that look at a rendered page: a screenshot
and the DOM after layout. Skips when no chromium binary is installed (`make test` installs it)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    pytest.skip("needs the chromium package (apt-get install -y chromium; `make test` does)")


def _run(page: Path, extra: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="lima-chromium-") as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()],
            capture_output=True,
            timeout=timeout,
            check=True,
        )


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 2000) -> Path:
    """A PNG of the page as a browser lays it out in a `width` x `height` window."""
    _run(page, [f"--window-size={width},{height}", f"--screenshot={out}"])
    return out


def dom(page: Path) -> str:
    """The serialised DOM after the page loaded (what the browser parsed, not the source)."""
    return _run(page, ["--dump-dom"]).stdout.decode()
