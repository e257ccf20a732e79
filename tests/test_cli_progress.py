"""The live display's pieces without a run: the train beacon, rates and ETAs, plain lines."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from types import SimpleNamespace

from lima.cli_progress import PlainEvents, Rate, finished_text
from lima.console.train_progress import TrainBeacon, describe, watch
from lima.runner import StageRun


def fake_run(rank: int, step: int, loss: float = 4.5, tokens_per_s: float = 1950.0):
    """What the training loop hands its callbacks: rank, steps and the step records so far."""
    record = {"kind": "step", "step": step, "loss": loss, "tokens_per_s": tokens_per_s}
    return SimpleNamespace(rank=rank, global_step=step, total_steps=96, records=[record])


def test_rank_0_writes_the_beacon_and_the_watcher_forwards_it(tmp_path: Path) -> None:
    beacon_file = tmp_path / "progress" / "train.json"
    calls: list[dict] = []
    with watch(beacon_file, lambda **kw: calls.append(kw), epochs=6, every_s=0.05):
        beacon = TrainBeacon(str(beacon_file), every_s=0.0)
        beacon.on_loss(fake_run(rank=1, step=40), 1, 0, loss=None)
        assert not beacon_file.exists()  # only rank 0 reports
        beacon.on_loss(fake_run(rank=0, step=40), 1, 0, loss=None)
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            time.sleep(0.05)
    assert calls[-1] == {
        "completed": 40,
        "total": 96,
        "note": "epoch 1/6, step 40/96, loss 4.500, 1,950 tok/s",
    }


def test_the_beacon_is_throttled_but_epoch_ends_always_land(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    beacon = TrainBeacon(str(path), every_s=60)
    beacon.on_loss(fake_run(0, step=1), 1, 0, loss=None)
    beacon.on_loss(fake_run(0, step=2), 1, 1, loss=None)
    assert json.loads(path.read_text())["step"] == 1
    beacon.on_epoch_end(fake_run(0, step=3), 1, {"loss": 3.25})
    state = json.loads(path.read_text())
    assert state["phase"] == "epoch" and state["step"] == 3
    assert describe(state, 6) == "epoch 1/6, step 3/96, loss 3.250"


def test_rate_reports_items_per_second_and_an_eta() -> None:
    rate = Rate("generate")
    rate.update(0, 100, "answering test")
    rate.first = (rate.first[0] - 10.0, 0)  # as if the first count came 10 s ago
    rate.update(20, None, None)
    assert rate.text() == "answering test, 20/100, 2.0 items/s, ETA 0:00:40"
    curate = Rate("curate")
    curate.update(1, 6, "read se-stem")
    curate.first = (curate.first[0] - 5.0, 0)
    curate.update(3, None, "read wikihow")
    assert "ETA" not in curate.text()  # sources differ in size: a rate predicts nothing


def test_plain_events_print_whole_lines_with_short_ids() -> None:
    out = io.StringIO()
    events = PlainEvents(out, every_s=0)
    stage = SimpleNamespace(name="judge")
    sink = events.stage_started(stage, "f" * 32)
    sink(completed=5, total=10, note="judging test against base-model with a long description")
    events.stage_finished(StageRun("judge", "f" * 32, "done", uri="file:///x" * 20, duration_s=2.5))
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("judge: started (judge/ffffffffffff)")
    assert "judging test against base-model with a long description, 5/10" in lines[1]
    assert lines[-1].endswith("judge: done 2.5s judge/ffffffffffff")
    assert "file://" not in out.getvalue()
    failed = StageRun("train", "", "failed", duration_s=1.0, message="loss diverged at step 7")
    assert finished_text(failed) == "failed 1.0s: loss diverged at step 7"


def test_output_to_log_takes_fd_level_noise_off_the_terminal(tmp_path: Path) -> None:
    """What Ray's C++ core worker does (write(2, ...)) and what Python libraries do (print to
    sys.stderr, logging) all land in the log; only the display reaches the real stdout."""
    import subprocess
    import sys

    script = f"""
import logging, os, sys
from pathlib import Path
from lima.console.capture import output_to_log
logging.basicConfig()
with output_to_log(Path({str(tmp_path / "logs" / "run.log")!r})) as terminal:
    os.write(2, b"core_worker.cc:2465 native noise\\n")
    os.write(1, b"native stdout noise\\n")
    print("python stderr noise", file=sys.stderr)
    logging.getLogger("ray").warning("Token authentication is enabled")
    terminal.write("display line\\n")
print("after the run")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "display line\nafter the run\n"
    assert done.stderr == ""
    log = (tmp_path / "logs" / "run.log").read_text()
    for noise in ("native noise", "native stdout noise", "python stderr noise", "Token auth"):
        assert noise in log
    assert (tmp_path / "logs" / "run.log").stat().st_mode & 0o777 == 0o644


def test_the_live_display_leaves_sys_stderr_to_the_log() -> None:
    """rich's Live would print sys.stdout/sys.stderr writes above the bars (how Ray's start-up
    warnings reached the terminal): with the streams left alone they go to the log file."""
    import sys

    from rich.console import Console

    from lima.cli_progress import RichEvents

    before = sys.stdout, sys.stderr
    shown = io.StringIO()
    with RichEvents(Console(file=shown, force_terminal=True, width=100)):
        assert (sys.stdout, sys.stderr) == before
        print("Token authentication is enabled", file=sys.stderr)
    assert "Token authentication" not in shown.getvalue()
