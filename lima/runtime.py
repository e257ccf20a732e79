"""Starting (or joining) Ray only when a stage actually has work to do."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from lima.settings import Settings

log = logging.getLogger("lima.runtime")

LOCAL_START_ATTEMPTS = 3


def ensure_ray(settings: Settings, num_cpus: int | None = None) -> None:
    """Connect to `LIMA_RAY_ADDRESS`, or start a local Ray instance once per process.

    Inside a RayJob the driver runs on the head node and `RAY_ADDRESS` is set; we join it.
    """
    import ray

    if ray.is_initialized():
        return
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
