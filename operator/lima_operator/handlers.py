"""kopf handlers: one timer per Experiment drives its stages; login, startup, probes.

A timer (rather than create/update handlers) keeps one sequential reconciler per object: it
runs at once when an Experiment appears (or the operator restarts), then every
`LIMA_OPERATOR_RECONCILE_INTERVAL_S`, picking up RayJob progress, spec edits and retries.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from lima.settings import Settings
from lima.spec import API_GROUP, API_VERSION
from lima_operator import metrics
from lima_operator.config import OperatorConfig
from lima_operator.kube import KubeClient
from lima_operator.pipeline import load_stages
from lima_operator.reconcile import Deps, reconcile

log = logging.getLogger("lima_operator")
EXPERIMENTS = (API_GROUP, API_VERSION, "experiments")


class _State:
    """Process-wide state, rebuilt on every operator start (so tests can restart it)."""

    config: OperatorConfig | None = None
    settings: Settings | None = None
    info: kopf.ConnectionInfo | None = None
    kube: KubeClient | None = None
    stages: list | None = None


STATE = _State()


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    STATE.config = OperatorConfig()
    STATE.settings = Settings()
    STATE.kube, STATE.info = None, None
    STATE.stages = load_stages()
    settings.scanning.disabled = True  # namespaces come from the command line; no cluster scans
    settings.posting.level = logging.WARNING  # only our own events, not kopf's chatter
    settings.persistence.finalizer = "lima-run.io/finalizer"
    # Status writes are ours; keep kopf's bookkeeping in annotations.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="lima-run.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="lima-run.io")
    metrics.serve(STATE.config.metrics_port)
    log.info("lima-run operator: %d stages, %s", len(STATE.stages), STATE.settings.describe())


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if STATE.kube is not None:
        await STATE.kube.close()
        STATE.kube = None


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    config = STATE.config or OperatorConfig()
    if config.api_server:
        info = kopf.ConnectionInfo(
            server=config.api_server, scheme="Bearer", token="dev", insecure=True
        )
    else:
        info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    STATE.info = info
    return info


@kopf.on.probe(id="stages")
def stages_probe(**_: Any) -> int:
    return len(STATE.stages or [])


def _deps() -> Deps:
    if STATE.kube is None:
        if STATE.info is None:
            raise kopf.TemporaryError("not logged in yet", delay=1)
        STATE.kube = KubeClient(STATE.info)
    return Deps(STATE.kube, STATE.config, STATE.settings, STATE.stages)


@kopf.timer(*EXPERIMENTS, interval=OperatorConfig().reconcile_interval_s, sharp=False)
async def drive(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    meta = body["metadata"]
    result = await reconcile(dict(body), _deps())
    if result is None:
        metrics.set_phase(meta["namespace"], meta["name"], (body.get("status") or {}).get("phase"))
        return
    current = body.get("status") or {}
    changed = {k: v for k, v in result.status.items() if current.get(k) != v}
    if changed:  # an unchanged status is not re-sent: no write, no watch event
        patch.status.update(changed)
    metrics.set_phase(meta["namespace"], meta["name"], result.status.get("phase"))
    for kind, reason, message in result.events:
        kopf.event(body, type=kind, reason=reason, message=message)


@kopf.on.delete(*EXPERIMENTS, optional=True)
def forget(body: kopf.Body, **_: Any) -> None:
    """Children go with owner references; artifacts stay in the store on purpose."""
    metrics.set_phase(body["metadata"]["namespace"], body["metadata"]["name"], None)
