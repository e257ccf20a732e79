"""kopf handlers: event-driven Experiments, a RayJob watch, a slow resync; login, probes.

- An Experiment is reconciled as soon as its creation event arrives (its first RayJob is
  created right there, after the cache-hit check), when the operator starts (first sight), and
  when its spec or retry annotation changes.
- RayJobs labelled `lima-run.io/experiment` are watched: a status change reconciles the owning
  Experiment at once, which maps the status and starts the next stage.
- A resync every `LIMA_OPERATOR_RECONCILE_INTERVAL_S` (default 60 s) reconciles every known
  Experiment once: a safety net for anything missed, not the way progress is noticed.
No per-object timer (a finalizer, i.e. one more API write before the first RayJob) and no kopf
change handlers (kopf's bookkeeping patch after each): kopf only watches.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import kopf

from lima import dag
from lima.k8s.rayjob import LABEL_EXPERIMENT
from lima.settings import Settings
from lima.spec import API_GROUP, API_VERSION
from lima_operator import metrics
from lima_operator.config import OperatorConfig
from lima_operator.driver import Known, drive, resync_forever
from lima_operator.kube import KubeClient
from lima_operator.reconcile import RETRY_ANNOTATION, Deps, forget_caches

log = logging.getLogger("lima_operator")
EXPERIMENTS = (API_GROUP, API_VERSION, "experiments")
RAYJOBS = ("ray.io", "v1", "rayjobs")


class _State:
    """Process-wide state, rebuilt on every operator start (so tests can restart it)."""

    config: OperatorConfig | None = None
    settings: Settings | None = None
    info: kopf.ConnectionInfo | None = None
    kube: KubeClient | None = None
    stages: list | None = None
    known: Known = Known()
    resync: asyncio.Task | None = None


STATE = _State()


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    STATE.config = OperatorConfig()
    STATE.settings = Settings()
    STATE.kube, STATE.info = None, None
    STATE.stages = list(dag.GRAPH)
    STATE.known = Known()
    forget_caches()
    settings.scanning.disabled = True  # namespaces come from the command line; no cluster scans
    settings.posting.level = logging.WARNING  # only our own events, not kopf's chatter
    # Only event handlers: kopf keeps no progress or diff-base state and adds no finalizer;
    # should a change handler ever be added, its bookkeeping goes under a prefix of its own
    # (kopf ignores annotations under its prefix when diffing: `lima-run.io/retry` must count).
    storage = "kopf.lima-run.io"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=storage)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=storage)
    # Long-lived watches, restarted by the server well before proxies cut idle connections.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    metrics.serve(STATE.config.metrics_port)
    STATE.resync = asyncio.create_task(
        resync_forever(STATE.known, _deps, STATE.config.reconcile_interval_s)
    )
    log.info("lima-run operator: %d stages, %s", len(STATE.stages), STATE.settings.describe())


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if STATE.resync is not None:
        STATE.resync.cancel()
        STATE.resync = None
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
    return Deps(STATE.kube, STATE.config, STATE.settings, STATE.stages, rayjobs=STATE.known.rayjobs)


@kopf.on.event(*EXPERIMENTS)
async def experiment_seen(type: str, body: kopf.Body, **_: Any) -> None:
    """Every Experiment event: remember the body; reconcile when what we act on changed.

    A plain event handler rather than kopf's create/update/resume handlers: those make kopf
    diff every event and write its bookkeeping annotations (one more API write and watch event
    per change). The trigger here is the spec and the retry annotation, compared with what this
    process last reconciled: first sight (a new Experiment, or any after a restart), a spec
    edit and a retry all reconcile; the operator's own status writes do not.
    """
    if type == "DELETED":  # children go with owner references; artifacts stay on purpose
        STATE.known.forget(dict(body))
        metrics.set_phase(body["metadata"]["namespace"], body["metadata"]["name"], None)
        return
    key = STATE.known.remember(dict(body))
    if body["metadata"].get("deletionTimestamp"):
        return  # going away: start nothing new
    trigger = _trigger(body)
    if STATE.known.triggers.get(key) == trigger:
        return
    await drive(key, STATE.known, _deps())
    STATE.known.triggers[key] = trigger  # not on failure: the next event or the resync retries


def _trigger(body: kopf.Body) -> str:
    annotations = body["metadata"].get("annotations") or {}
    return json.dumps(
        [body["metadata"].get("uid"), body.get("spec"), annotations.get(RETRY_ANNOTATION)],
        sort_keys=True,
    )


@kopf.on.event(*RAYJOBS, labels={LABEL_EXPERIMENT: kopf.PRESENT})
async def rayjob_seen(type: str, body: kopf.Body, **_: Any) -> None:
    """A RayJob of ours changed: reconcile its Experiment now if its status moved."""
    meta = body["metadata"]
    key = (meta["namespace"], meta["name"])
    if type == "DELETED":
        STATE.known.rayjobs.pop(key, None)
        return
    old = STATE.known.rayjobs.get(key) or {}
    STATE.known.rayjobs[key] = dict(body)
    if old.get("status") == body.get("status") or (not old and not body.get("status")):
        return  # just created (by us): the creating reconcile already wrote the status
    owner = (meta["namespace"], meta["labels"][LABEL_EXPERIMENT])
    if owner in STATE.known.bodies:
        await drive(owner, STATE.known, _deps())
