"""Stopping for good (Ctrl-C): nothing the run started survives, and nothing starts Ray again.

Each case runs in a fresh interpreter: the stop is process-wide by design.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="subreaper: Linux")

# A shell starts a grandchild that ignores SIGTERM, then exits: the grandchild is an orphan, as
# Ray's agents are once Ctrl-C has also killed their raylet.
SCRIPT = textwrap.dedent(
    """
    import json, subprocess, sys, time
    import psutil
    from lima import runtime
    from lima.settings import Settings

    if sys.argv[1] == "adopt":
        runtime.adopt_orphans()
    pid_file = sys.argv[2]
    ignores_term, sleeps = 'trap \\"\\" TERM;', "exec sleep 300 >/dev/null 2>&1"
    subprocess.run(
        ["sh", "-c", f"sh -c '{ignores_term} echo $$ > {pid_file}; {sleeps}' &"],
        check=True,
    )
    for _ in range(100):
        try:
            orphan = int(open(pid_file).read())
            break
        except (OSError, ValueError):
            time.sleep(0.05)
    started = time.monotonic()
    frozen = runtime.freeze_ray(time.monotonic() + 2.0)
    was_frozen = [p.status() for p in frozen if p.pid == orphan] == ["stopped"]
    runtime.kill_frozen(frozen)

    def alive():
        try:
            return psutil.Process(orphan).status() != "zombie"
        except psutil.NoSuchProcess:
            return False

    while alive() and time.monotonic() < started + 2.0:
        time.sleep(0.01)
    took = time.monotonic() - started
    alive = alive()
    try:
        runtime.ensure_ray(Settings())
        again = "started"
    except runtime.RayStoppedError as error:
        again = str(error)
    from ray._private import auto_init_hook

    print(json.dumps({"alive": alive, "took": took, "again": again, "frozen": was_frozen,
                      "auto_init": auto_init_hook.enable_auto_connect, "orphan": orphan}))
    """
)


def run_case(mode: str, tmp_path: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode, str(tmp_path / "orphan.pid")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_orphan_is_frozen_then_killed_by_the_deadline_and_ray_stays_stopped(
    tmp_path: Path,
) -> None:
    result = run_case("adopt", tmp_path)
    assert result["frozen"] is True  # stopped first: nothing dies before the CLI's exit code is out
    assert result["alive"] is False
    assert result["took"] < 2.5
    assert result["again"] == "the run was stopped; Ray is not started again"
    assert result["auto_init"] is False  # a Ray Data call left in a stage thread starts nothing


def test_without_adoption_the_orphan_is_out_of_reach(tmp_path: Path) -> None:
    """The control case: what `adopt_orphans` is for (re-parented to init, never listed)."""
    result = run_case("plain", tmp_path)
    try:
        assert result["alive"] is True
    finally:
        subprocess.run(["kill", "-9", str(result["orphan"])], check=False)
