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

Start-up reads the installed KubeRay's RayJob CRD (lima.k8s.kuberay: every RayJob is checked
against it before it is created) and, with leader election, only the Lease holder reconciles.
Login is the cluster's own: the pod's service account, else the kubeconfig (tests write one).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from typing import Any

import kopf

from lima import dag
from lima.k8s.kuberay import RAYJOB_CRD, InstalledKubeRay, rayjob_schema
from lima.k8s.rayjob import LABEL_EXPERIMENT
from lima.settings import Settings
from lima.spec import API_GROUP, API_VERSION
from lima.store.sources import reuse_s3_fingerprints
from lima_operator import metrics
from lima_operator.config import OperatorConfig
from lima_operator.experiments import Known, drive, resync_forever
from lima_operator.kube import KubeClient, KubeError
from lima_operator.leader import LeaderElector
from lima_operator.offload import Offloader
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
    kuberay: InstalledKubeRay = InstalledKubeRay()
    kuberay_read: float = 0.0  # monotonic time of the last CRD read
    offload: Offloader | None = None
    elector: asyncio.Task | None = None


STATE = _State()


class NoDiffBase(kopf.AnnotationsDiffBaseStorage):
    """No diff base: kopf deep-copies every event's body to diff it for change handlers.

    This operator registers only event handlers, which never see a diff; the copies were a
    quarter of its CPU in a burst of new Experiments. tests/test_operator.py checks that no
    change, daemon or timer handler (the users of a diff) is ever registered with it.
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    STATE.config = OperatorConfig()
    STATE.settings = Settings()
    STATE.kube, STATE.info = None, None
    STATE.stages = list(dag.GRAPH)
    STATE.known = Known(active=not STATE.config.leader_election)
    STATE.kuberay, STATE.kuberay_read = InstalledKubeRay(), 0.0
    STATE.offload = Offloader(STATE.config.store_timeout_s)
    reuse_s3_fingerprints(STATE.config.source_listing_cache_s)
    forget_caches()
    settings.scanning.disabled = True  # namespaces come from the command line; no cluster scans
    settings.posting.level = logging.WARNING  # only our own events, not kopf's chatter
    # Only event handlers: kopf keeps no progress or diff-base state and adds no finalizer;
    # should a change handler ever be added, its bookkeeping goes under a prefix of its own
    # (kopf ignores annotations under its prefix when diffing: `lima-run.io/retry` must count).
    storage = "kopf.lima-run.io"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=storage)
    settings.persistence.diffbase_storage = NoDiffBase(prefix=storage)
    # Long-lived watches, restarted by the server well before proxies cut idle connections.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    metrics.serve(STATE.config.metrics_port)
    STATE.resync = asyncio.create_task(
        resync_forever(STATE.known, _deps, STATE.config.reconcile_interval_s)
    )
    if STATE.config.leader_election:
        STATE.elector = asyncio.create_task(_elect())
    if STATE.config.gc_tuning:
        tune_gc()
    log.info("lima-run operator: %d stages, %s", len(STATE.stages), STATE.settings.describe())


GC_THRESHOLD = (10_000, 10, 10)
"""Python's default (700, 10, 10) runs the collector every 700 container allocations: a burst
of new Experiments (JSON bodies, kopf's wrappers, spec models; nearly all freed by reference
counting) ran ~190 collections, a full one among them."""


def tune_gc() -> None:
    """Leave what start-up built (modules, kopf, pydantic's validators: ~100k objects) out of
    every later garbage collection, and collect less often. A full collection scans every
    tracked object: in a burst of 100 new Experiments one landed mid-burst and stalled the
    event loop 90-160 ms. What start-up built lives as long as the process anyway (its garbage
    is collected first); cyclic garbage waits at most ~10k allocations more."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    for task in (STATE.resync, STATE.elector):
        if task is not None:
            task.cancel()
    STATE.resync = STATE.elector = None
    if STATE.offload is not None:
        STATE.offload.close()
    if STATE.kube is not None:
        await STATE.kube.close()
        STATE.kube = None


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    STATE.info = info
    return info


@kopf.on.probe(id="stages")
def stages_probe(**_: Any) -> int:
    return len(STATE.stages or [])


@kopf.on.probe(id="reconciling")
def reconciling_probe(**_: Any) -> bool:
    """Whether this replica reconciles (False: a standby waiting for the Lease)."""
    return STATE.known.active


def _client() -> KubeClient:
    if STATE.kube is None:
        if STATE.info is None:
            raise kopf.TemporaryError("not logged in yet", delay=1)
        STATE.kube = KubeClient(STATE.info, timeout_s=STATE.config.api_timeout_s)
    return STATE.kube


async def _deps() -> Deps:
    kube = _client()
    await _read_kuberay(kube)
    return Deps(
        kube,
        STATE.config,
        STATE.settings,
        STATE.stages,
        rayjobs=STATE.known.rayjobs,
        kuberay=STATE.kuberay,
        offload=STATE.offload,
    )


async def _read_kuberay(kube: KubeClient) -> None:
    """(Re-)read the RayJob CRD: once at start, then every resync interval until it exists."""
    fresh = time.monotonic() - STATE.kuberay_read < STATE.config.reconcile_interval_s
    if STATE.kuberay_read and (STATE.kuberay.present or fresh):
        return
    STATE.kuberay_read = time.monotonic()
    try:
        crd = await kube.get_crd(RAYJOB_CRD)
    except KubeError as error:  # e.g. 403 without the chart's ClusterRole: assume nothing
        log.warning("cannot read the KubeRay CRD %s: %s", RAYJOB_CRD, error)
        return
    STATE.kuberay.present = crd is not None
    STATE.kuberay.schema = rayjob_schema(crd) if crd else {}
    if crd is None:
        log.error("KubeRay is not installed: CRD %s not found", RAYJOB_CRD)


async def _elect() -> None:
    """Hold the Lease (started with the operator; it waits for the login to finish)."""
    while STATE.info is None:
        await asyncio.sleep(0.1)
    config = STATE.config
    elector = LeaderElector(
        _client, config.namespace, config.lease_name, config.identity, config.lease_duration_s
    )

    async def changed(leading: bool) -> None:
        STATE.known.active = leading
        if leading:  # everything seen while standing by is reconciled now
            deps = await _deps()
            for key in list(STATE.known.bodies):
                await drive(key, STATE.known, deps)

    await elector.run(changed)


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
    if not STATE.known.active:
        return  # a standby: the leader reconciles; this replica only keeps what it sees
    await drive(key, STATE.known, await _deps())
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
        await drive(owner, STATE.known, await _deps())
