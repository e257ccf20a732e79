"""`lima run` as a user sees it: under a pseudo-terminal, from another folder, then inspected,
re-run in a pipe, and interrupted with Ctrl-C. One small experiment (the demo data and the
`tiny` preset, fewer epochs and prompts) is run for real; the tests share its work directory.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.test_cli import DEMO, lima

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]  # a whole (small) demo run
STAGES = ("curate", "train", "select", "generate", "judge", "report")
DEV_WANTED = 100  # more than the demo sources' surplus over their quotas
SHORTFALL = re.compile(
    rf"curate shortfall: dev: (\d+) of {DEV_WANTED} prompts \(the sources have (\d+) usable "
    r"rows, (\d+) of them reserved for the training quotas, (\d+) left over"
)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
NOISE = [
    "Token authentication",
    "core_worker",
    "raylet",
    "SIGTERM handler",
    "WARNING",
    "INFO ",
    "Traceback",
    "FutureWarning",
    "UserWarning",
    "file://",  # artifacts are shown by short id on the live display
]


def small_demo(project: Path) -> Path:
    """The demo, smaller: 2 epochs, few prompts, short answers (same data, same stages). It
    asks for more dev prompts than the sources leave over after the training quotas, so the
    held-out splits come out short, which the run must say on the console (issue 13)."""
    document = yaml.safe_load(DEMO.read_text())
    spec = document["spec"]
    spec["train"].update(epochs=2, eligible_epochs=[1, 2])
    spec["data"]["splits"] = {"dev": DEV_WANTED, "test": 6}  # selection uses 4 of the dev prompts
    spec["generate"].update(max_new_tokens=16)
    spec["generate"]["prompt_sets"][1]["limit"] = 2
    spec["judge"].update(selection_prompts=4, protocols=["pairwise", "absolute"])
    folder = project / "experiments"
    folder.mkdir(parents=True)
    (folder / "data").symlink_to(DEMO.parent / "data")
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _interactive_signals() -> None:
    """Ctrl-C as in a terminal, even when pytest runs as a background job (which ignores it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_in_pty(
    args: list[str],
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    watch: Callable[[str, subprocess.Popen], None] | None = None,
) -> tuple[int, str]:
    """Run `args` with a 120x40 pseudo-terminal as stdin/stdout/stderr; (exit code, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        args,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env=env,
        start_new_session=True,
        preexec_fn=_interactive_signals,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer of the terminal is gone
                    break
                if not data:
                    break
                chunks.append(data)
                if watch is not None:
                    watch(b"".join(chunks).decode("utf-8", "replace"), proc)
            elif proc.poll() is not None:
                break
        else:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"{args} did not finish in {timeout}s")
    finally:
        os.close(master)
        if proc.poll() is None and sys.exc_info()[0] is not None:
            os.killpg(proc.pid, signal.SIGKILL)  # the test failed: leave nothing running
    return proc.wait(timeout=30), ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


def user_env(marker: str | None = None) -> dict[str, str]:
    """The caller's environment without LIMA_* (the work directory is found, not given);
    `marker` is inherited by every process the run starts, so the test can find them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIMA_")}
    env.update(TERM="xterm-256color", COLUMNS="120", LINES="40", PYTHONPATH=str(REPO))
    if marker:
        env["CLI_TEST_MARKER"] = marker
    return env


def processes_with(marker: str) -> list[int]:
    """Live processes whose environment carries `marker` (the run and all it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"CLI_TEST_MARKER={marker}".encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found


def describe(pids: list[int]) -> list[str]:
    """`pid (parent pid) command line` of each process, for a failure message."""
    found = []
    for pid in pids:
        try:
            parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:160]
        except OSError:
            continue
        found.append(f"{pid} ({parent}) {command.decode(errors='replace')}")
    return found


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One real run of the small demo under a pseudo-terminal, from outside the project."""
    root = tmp_path_factory.mktemp("cli-terminal")
    project = root / "project"
    (project / ".git").mkdir(parents=True)  # a repository root: where .lima/ goes
    experiment = small_demo(project)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    code, output = run_in_pty(
        [sys.executable, "-m", "lima.cli", "run", str(experiment)],
        cwd=elsewhere,
        env=user_env(),
        timeout=1200,
    )
    return {"root": root, "project": project, "experiment": experiment, "code": code, "out": output}


def test_run_under_a_terminal_shows_no_library_noise_and_ends_with_the_result(project) -> None:
    output, work = str(project["out"]), Path(project["project"]) / ".lima"  # type: ignore[arg-type]
    assert project["code"] == 0, output[-4000:]
    assert f"work dir {work}" in output
    log = re.search(r"library output: (\S+\.log)", output)
    assert log is not None and Path(log.group(1)).parent == work / "logs"
    assert Path(log.group(1)).is_file()  # what it captures: test_cli_progress.py
    for noise in NOISE:
        assert noise not in output, f"{noise!r} reached the terminal:\n{output[-3000:]}"
    assert re.search(r"selected epoch: [12]\b", output), output[-2000:]
    assert re.search(r"result: win \d+% .*/ tie \d+% / loss \d+% vs base-model", output)
    report = re.search(r"report: (\S+report\.html)", output)
    assert report is not None and Path(report.group(1)).is_file()
    assert Path(report.group(1)).stat().st_mode & 0o777 == 0o644
    assert re.search(r"0/6 cache hits, [\d.]+s, run \d{8}T\d{6}-[0-9a-f]{6}", output)


def test_the_run_shows_curation_shortfalls_and_the_proxy_judge(project) -> None:
    """During a run the library's warnings go to the log file only: the shortfall of the
    held-out splits (with its numbers) and the proxy judge must reach the terminal themselves,
    on the live display and again in the closing summary."""
    output = str(project["out"])
    assert project["code"] == 0, output[-4000:]
    found = SHORTFALL.findall(output)
    assert found, output[-4000:]
    got, usable, reserved, left = map(int, found[0])
    assert got < DEV_WANTED and left == usable - reserved and 0 < got <= left
    closing = output[output.rindex("run summary") :]  # after the live display
    assert SHORTFALL.search(closing), closing
    assert re.search(r"selected epoch: [12] \(chosen by the proxy judge\)", closing), closing
    assert re.search(r"result: win .* vs base-model .*\(proxy judge\)", closing)
    assert "judge: reference:all-MiniLM-L6-v2 is the embedded proxy judge" in closing


def test_status_shows_the_selected_epoch_the_proxy_judge_and_shortfalls(project) -> None:
    inside = Path(project["project"])  # type: ignore[arg-type]
    listed = lima("status", "demo", "--output", "json", work=None, cwd=inside)
    assert listed.returncode == 0, listed.stderr
    first = json.loads(listed.stdout)["runs"][0]
    found = first["outcome"]
    assert found["selected_epoch"] in (1, 2) and found["selection_fallback"] is None
    assert found["judge_proxy"] is True and found["judge"] == "reference:all-MiniLM-L6-v2"
    assert found["headline"].startswith("win ")
    assert SHORTFALL.match("curate shortfall: " + found["curate_shortfalls"][0])
    shown = lima("status", first["run_id"], work=None, cwd=inside)
    assert shown.returncode == 0, shown.stderr
    epoch = found["selected_epoch"]
    assert f"selected epoch: {epoch} (chosen by the proxy judge)" in shown.stdout
    assert "reference:all-MiniLM-L6-v2 is the embedded proxy judge" in shown.stdout
    assert SHORTFALL.search(shown.stdout), shown.stdout


def test_status_from_a_subfolder_lists_the_run_stage_by_stage(project) -> None:
    subfolder = Path(project["project"]) / "docs" / "notes"  # type: ignore[arg-type]
    subfolder.mkdir(parents=True)
    listed = lima("status", "--output", "json", work=None, cwd=subfolder)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)["runs"]
    assert [r["status"] for r in runs] == ["succeeded"]
    stages = runs[0]["stages"]
    assert [s["stage"] for s in stages] == [
        "curate",
        "train",
        "select",
        "generate",
        "judge",
        "report",
    ]
    assert all(s["status"] == "done" and s["duration_s"] > 0 for s in stages)
    assert all(s["artifact"] == f"{s['stage']}/{s['key'][:12]}" for s in stages)
    one = lima("status", runs[0]["run_id"][:12], work=None, cwd=subfolder)
    assert one.returncode == 0 and "train" in one.stdout and "done" in one.stdout
    chain = lima(
        "lineage", "--run", runs[0]["run_id"], "--output", "json", work=None, cwd=subfolder
    )
    assert [s["stage"] for s in json.loads(chain.stdout)["stages"]][-1] == "report"
    page = lima("report", "demo", "--output", "json", work=None, cwd=subfolder)
    assert json.loads(page.stdout)["from_older_run"] is False
    # --open hands the page to the user's browser ($BROWSER is what webbrowser runs)
    opened = subfolder / "opened.txt"
    browser = subfolder / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    shown = lima("report", "demo", "--open", work=None, cwd=subfolder, BROWSER=str(browser))
    assert shown.returncode == 0, shown.stderr
    assert opened.read_text().strip() == Path(shown.stdout.strip()).as_uri()


def test_a_forced_stage_in_a_pipe_prints_whole_lines_and_keeps_downstream_keys(project) -> None:
    """Not a terminal: one plain line per event, no 80-column cut. Forcing `select` re-runs it
    with the same inputs: its artifact, and so every key after it, stays the same."""
    experiment, cwd = Path(project["experiment"]), Path(project["root"])  # type: ignore[arg-type]
    inside = Path(project["project"])  # type: ignore[arg-type]  # where `status` finds .lima/
    rerun = lima("run", str(experiment), "--force-stage", "select", work=None, cwd=cwd)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "\x1b[" not in rerun.stdout
    assert any(len(line) > 80 for line in rerun.stdout.splitlines())  # never wrapped
    assert re.search(
        r"^\d\d:\d\d:\d\d select: done [\d.]+s select/[0-9a-f]{12}$", rerun.stdout, re.M
    )
    assert "5/6 cache hits" in rerun.stdout
    listed = lima("status", "demo", "--output", "json", work=None, cwd=inside)
    runs = json.loads(listed.stdout)["runs"]
    first, second = runs[0]["run_id"], runs[-1]["run_id"]
    diff = json.loads(lima("diff", first, second, "--output", "json", work=None, cwd=inside).stdout)
    same = {row["stage"]: row["same_artifact"] for row in diff["stages"]}
    assert same == dict.fromkeys(STAGES, True)


def test_an_unchanged_rerun_is_all_cache_hits_and_starts_no_ray(project) -> None:
    experiment, inside = Path(project["experiment"]), Path(project["project"])  # type: ignore[arg-type]
    started = time.monotonic()
    again = lima("run", str(experiment), work=None, cwd=inside)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "6/6 cache hits" in again.stdout
    assert SHORTFALL.search(again.stdout), again.stdout  # a cache hit still says it
    assert time.monotonic() - started < 60  # manifests only: no Ray, no model
    log = re.search(r"library output: (\S+\.log)", again.stdout)
    assert log is not None and "Ray" not in Path(log.group(1)).read_text()
    chain = lima("lineage", "demo", work=None, cwd=inside).stdout
    assert "<- train sha256:" in chain and "report/" in chain


def test_a_checkpoint_chosen_by_fallback_is_said_in_the_run_and_in_status(project) -> None:
    """A judge whose every reply is unparseable, with `selection_fallback: last_epoch`: the run
    succeeds, and its console and `lima status` say the epoch was not chosen on judged
    evidence, naming the judge and the valid counts (issue 18). Curate and train are the
    first run's (cache hits): only the judge differs."""
    from scripted_endpoint import Reply, ScriptedEndpoint

    experiment, inside = Path(project["experiment"]), Path(project["project"])  # type: ignore[arg-type]
    document = yaml.safe_load(experiment.read_text())
    document["metadata"]["name"] = "demo-thin"
    document["spec"]["judge"].update(
        backend="openai", model="mute", max_retries=0, selection_fallback="last_epoch"
    )
    thin = experiment.with_name("thin.yaml")
    thin.write_text(yaml.safe_dump(document, sort_keys=False))
    with ScriptedEndpoint(lambda body: Reply("I cannot decide.")) as endpoint:
        done = lima("run", str(thin), work=None, cwd=inside, LIMA_JUDGE_BASE_URL=endpoint.url)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    reason = r"judge openai:mute gave too few valid verdicts \(epoch 2: 0 of 4 verdicts valid;"
    assert re.search(
        rf"^\d\d:\d\d:\d\d select: epoch 2 chosen by fallback last_epoch: {reason}", out, re.M
    ), out
    assert re.search(rf"^selected epoch: 2 \(fallback last_epoch: {reason}", out, re.M), out
    assert "proxy" not in out
    shown = lima("status", "demo-thin", work=None, cwd=inside)
    assert re.search(rf"^selected epoch: 2 \(fallback last_epoch: {reason}", shown.stdout, re.M)
    listed = lima("status", "demo-thin", "--output", "json", work=None, cwd=inside)
    found = json.loads(listed.stdout)["runs"][-1]["outcome"]
    assert (found["selected_epoch"], found["selection_fallback"]) == (2, "last_epoch")
    assert (
        found["judge_proxy"] is False
        and "0 of 4 verdicts valid" in (found["selection_fallback_reason"])
    )


def test_ctrl_c_during_train_records_the_run_and_stops_every_worker_within_5s(project) -> None:
    experiment, cwd = Path(project["experiment"]), Path(project["root"])  # type: ignore[arg-type]
    inside = Path(project["project"])  # type: ignore[arg-type]  # where `status` finds .lima/
    marker = uuid.uuid4().hex
    sent: dict[str, float] = {}

    def interrupt_once_training(output: str, proc: subprocess.Popen) -> None:
        if "sent" not in sent and re.search(
            r"train .*(epoch|workers|preparing)", ANSI.sub("", output)
        ):
            time.sleep(3)  # let Ray Train start its workers
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
            sent["sent"] = time.monotonic()

    code, output = run_in_pty(
        [sys.executable, "-m", "lima.cli", "run", str(experiment), "--force-stage", "train"],
        cwd=cwd,
        env=user_env(marker),
        timeout=600,
        watch=interrupt_once_training,
    )
    stopped_in = time.monotonic() - sent["sent"]
    assert code == 130, output[-3000:]
    assert re.search(r"interrupted: run \S+ recorded, workers stopped", output)
    assert stopped_in < 5, f"exit took {stopped_in:.1f}s"
    # Ray's workers exit once their raylet is gone, which can take a moment after the CLI has
    # exited: the promise is every process gone within 5 s of Ctrl-C, so that is the deadline.
    while processes_with(marker) and time.monotonic() < sent["sent"] + 5:
        time.sleep(0.1)
    left = describe(processes_with(marker))
    assert left == [], f"processes outlived the run by over 5 s: {left}"
    listed = lima("status", "demo", "--output", "json", work=None, cwd=inside)
    runs = json.loads(listed.stdout)["runs"]
    last = runs[-1]
    assert last["status"] == "interrupted"
    assert [s["status"] for s in last["stages"]][:2] == ["cached", "interrupted"]
    # the latest run made no report: `lima report` serves an older one, and says so
    page = lima("report", "demo", work=None, cwd=inside)
    assert page.returncode == 0 and Path(page.stdout.strip()).is_file()
    assert f"the latest run {last['run_id']} made no report; this one is from run" in page.stderr
