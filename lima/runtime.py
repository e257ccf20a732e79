"""Starting (or joining) Ray only when a stage actually has work to do."""

from __future__ import annotations

import logging
import os

from lima.settings import Settings

log = logging.getLogger("lima.runtime")


def ensure_ray(settings: Settings, num_cpus: int | None = None) -> None:
    """Connect to `LIMA_RAY_ADDRESS`, or start a local Ray instance once per process.

    Inside a RayJob the driver runs on the head node and `RAY_ADDRESS` is set; we join it.
    """
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    address = settings.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        log.info("joining Ray at %s", address)
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        return
    log.info("starting a local Ray instance")
    ray.init(
        num_cpus=num_cpus
        or max(os.cpu_count() or 1, 4),  # logical slots: small stages oversubscribe
        include_dashboard=False,
        ignore_reinit_error=True,
        log_to_driver=False,
        configure_logging=False,
    )
