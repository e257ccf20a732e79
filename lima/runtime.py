"""Starting (or joining) Ray only when a stage actually has work to do, and stopping it whole."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from lima.errors import LimaError
from lima.settings import Settings

log = logging.getLogger("lima.runtime")

LOCAL_START_ATTEMPTS = 3

_lifecycle = threading.Lock()  # held while Ray starts: a stop waits for a start under way
_stopped = threading.Event()  # set by freeze_ray(): this process never starts Ray again


class RayStoppedError(LimaError):
    """A stage asked for Ray after the run was stopped (Ctrl-C)."""


def ensure_ray(settings: Settings, num_cpus: int | None = None) -> None:
    """Connect to `LIMA_RAY_ADDRESS`, or start a local Ray instance once per process.

    Inside a RayJob the driver runs on the head node and `RAY_ADDRESS` is set; we join it.
    """
    import ray

    with _lifecycle:
        if _stopped.is_set():
            raise RayStoppedError("the run was stopped; Ray is not started again")
        if not ray.is_initialized():
            _start_ray(settings, num_cpus)


def _start_ray(settings: Settings, num_cpus: int | None) -> None:
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    _quiet_ray_progress()
    address = settings.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        log.info("joining Ray at %s", address)
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        return
    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        log.info("starting a local Ray instance (attempt %d)", attempt)
        try:
            ray.init(
                num_cpus=num_cpus or local_cpu_slots(),
                include_dashboard=False,
                ignore_reinit_error=True,
                log_to_driver=False,
                configure_logging=False,
            )
            return
        except Exception as error:
            # Ray gives its raylet a fixed 30 s to register; a busy laptop can miss that once.
            if "timed out during startup" not in str(error) or attempt == LOCAL_START_ATTEMPTS:
                raise
            log.warning("local Ray did not start in time (%s); retrying", error)
            ray.shutdown()


def local_cpu_slots() -> int:
    """CPU slots of a local Ray: at least 4 logical slots, so small stages oversubscribe a
    2-core laptop instead of waiting for each other."""
    return max(os.cpu_count() or 1, 4)


def local_gpus() -> int:
    """NVIDIA GPUs this machine exposes (without importing torch)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    driver = Path("/proc/driver/nvidia/gpus")
    return len(list(driver.iterdir())) if driver.is_dir() else 0


def _quiet_ray_progress() -> None:
    """Ray Data's own progress lines would interleave with the CLI's per-stage bars; stages
    report progress through their ProgressSink instead. `lima -v` still shows Ray's INFO logs."""
    if logging.getLogger("lima").getEffectiveLevel() <= logging.INFO:
        return
    # Inherited by the Ray workers started after this: no download/loading bars from HF.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from ray.data import DataContext  # importing ray.data configures its loggers: do it first

    for name in ("ray.data", "ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.ERROR)
    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False


def adopt_orphans() -> None:
    """Linux: make this process the subreaper of all it starts.

    Ray's raylet and GCS block SIGINT, but when one of them dies anyway (OOM killer, a crash),
    the agents and workers it started are re-parented, by default to init, where a list of this
    process's descendants (what Ctrl-C stops) no longer finds them. As subreaper, they are
    re-parented to us.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_child_subreaper = 36  # from <linux/prctl.h>
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0)


def descendants() -> list[Any]:
    """The processes this one started, and theirs (`psutil.Process` objects)."""
    import psutil

    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


def shutdown_ray(deadline: float) -> None:
    """`ray.shutdown()`, waiting for it until `deadline` (monotonic) at most."""
    if "ray" not in sys.modules:
        return
    import ray

    if ray.is_initialized():
        stopper = threading.Thread(target=ray.shutdown, name="lima-ray-stop", daemon=True)
        stopper.start()
        stopper.join(max(0.0, deadline - time.monotonic()))


def freeze_ray(deadline: float, started: list[Any] | None = None) -> list[Any]:
    """Stop (SIGSTOP) every process this one started, the local Ray's; return them.

    For a process about to exit (Ctrl-C); `kill_frozen` ends them as the last step before the
    exit. Why freeze first: Ray's core worker in this process ends the process with exit code
    1 the moment it sees its raylet die, so the raylet must not die before the exit code (130)
    and the message are out; frozen, it keeps its sockets open and spawns nothing more.
    Afterwards neither `ensure_ray` nor Ray's own auto-init (a `ray.remote` or Ray Data call
    still running in a stage thread) starts Ray again. No `ray.shutdown()`: a stage thread in
    Ray touching a shut down core worker also ends the process with exit code 1.
    """
    import psutil

    _stopped.set()
    with contextlib.suppress(ImportError, AttributeError):
        from ray._private import auto_init_hook  # private, so guarded: no auto-init after a stop

        auto_init_hook.enable_auto_connect = False
    # A start under way finishes first, so that what it started is frozen too.
    if _lifecycle.acquire(timeout=max(0.0, deadline - time.monotonic())):
        _lifecycle.release()
    frozen: dict[int, Any] = {}
    candidates = list(started or []) + descendants()
    for _ in range(10):  # until a listing finds nothing new: a parent spawning as it froze
        fresh = [p for p in candidates if p.pid not in frozen]
        if not fresh:
            break
        for process in fresh:
            with contextlib.suppress(psutil.Error):  # gone meanwhile
                process.suspend()  # psutil checks that the pid was not reused
            frozen[process.pid] = process
        candidates = descendants()
    return list(frozen.values())


def kill_frozen(processes: list[Any]) -> None:
    """SIGKILL `processes` (frozen by `freeze_ray`) without waiting: the caller exits next, and
    the kernel ends a killed process at once, stopped or not."""
    import psutil

    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()
