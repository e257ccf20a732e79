"""Drive one Experiment: the one place its status is written, one reconcile at a time.

Three things ask for a reconcile: kopf's create/resume/update handlers of the Experiment, the
watch on its RayJobs (a status change), and a slow resync loop (a safety net for anything
missed). They can overlap, so each Experiment has a lock, and a reconcile starts from the
status last written here (the Experiment watch may not have delivered it yet): the operator is
the only writer of `status`, so no stale read can repeat an event or reset a start time.

A reconcile that fails (API error, store not answering, KubeRay missing) still writes a status:
the failure's phase, reason and message, plus a Warning event, and is tried again by itself
after a delay when the platform, not the spec, is at fault (lima_operator.failures).
Only an active replica (the Lease holder, with leader election) reconciles anything.

First RayJobs first: a new Experiment's first reconcile creates its first RayJob before its
status is written. While other new Experiments are still on their way to their first RayJob, a
status write (and its Events) waits for them, at most `FIRST_RAYJOBS_FIRST_S`: in a burst of
new Experiments (a pipeline applying 100 manifests) the API writes and watch events that a
status patch causes no longer delay the RayJobs of the Experiments behind it. A start older
than that (one stuck on a hung artifact store) no longer holds anything back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import kopf

from lima.spec import API_GROUP, API_VERSION
from lima_operator import metrics
from lima_operator.failures import classify, failure_status
from lima_operator.reconcile import Deps, Result, parse, reconcile
from lima_operator.status import FAILED, now

log = logging.getLogger("lima_operator")
Key = tuple[str, str]  # (namespace, name)
FIRST_RAYJOBS_FIRST_S = 1.0
"""Longest a status write waits for other new Experiments' first RayJobs (module docstring)."""


@dataclass
class Known:
    """What the watches told this process; rebuilt on every operator start."""

    bodies: dict[Key, dict[str, Any]] = field(default_factory=dict)
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)  # by uid: last written
    rayjobs: dict[Key, dict[str, Any]] = field(default_factory=dict)
    locks: dict[Key, asyncio.Lock] = field(default_factory=dict)
    triggers: dict[Key, str] = field(default_factory=dict)  # what the last reconcile acted on
    retries: dict[Key, asyncio.TimerHandle] = field(default_factory=dict)  # after a failure
    active: bool = True
    """This replica reconciles (False: a standby under leader election; it only watches)."""
    starting: dict[Key, float] = field(default_factory=dict)
    """New Experiments in their first reconcile (monotonic start time): their RayJobs go first."""
    started: asyncio.Event = field(default_factory=asyncio.Event)
    """Set while no Experiment of `starting` is younger than FIRST_RAYJOBS_FIRST_S."""

    def start(self, key: Key) -> None:
        self.starting.setdefault(key, time.monotonic())
        self.started.clear()

    def start_done(self, key: Key) -> None:
        if self.starting.pop(key, None) is not None and not self._starts_live():
            self.started.set()

    def _starts_live(self, limit: float = FIRST_RAYJOBS_FIRST_S) -> bool:
        now = time.monotonic()
        return any(now - since < limit for since in self.starting.values())

    async def after_starts(self, limit: float = FIRST_RAYJOBS_FIRST_S) -> None:
        """Wait until no other new Experiment is starting (one that started over `limit`
        seconds ago no longer counts), at most `limit` seconds."""
        if self._starts_live(limit):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.started.wait(), limit)

    def remember(self, body: dict[str, Any]) -> Key:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        self.bodies[key] = body
        return key

    def forget(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        known = self.bodies.pop(key, None)
        self.statuses.pop(meta.get("uid") or "", None)
        if known is not None:
            self.statuses.pop(known["metadata"].get("uid") or "", None)
        self.locks.pop(key, None)
        self.triggers.pop(key, None)
        self.start_done(key)
        retry = self.retries.pop(key, None)
        if retry is not None:
            retry.cancel()


async def drive(key: Key, known: Known, deps: Deps) -> None:
    """Reconcile the Experiment `key` (if still known) and write what changed."""
    if not known.active:
        return
    lock = known.locks.setdefault(key, asyncio.Lock())
    async with lock:
        body = known.bodies.get(key)
        if body is None:  # deleted meanwhile
            return
        uid = body["metadata"].get("uid") or ""
        current = known.statuses.get(uid, body.get("status") or {})
        if not current:  # new: its first RayJob goes before other status writes
            known.start(key)
        try:
            result = await _reconcile_or_failure(key, {**body, "status": current}, known, deps)
        finally:
            known.start_done(key)
        if result is None:
            metrics.set_phase(key[0], key[1], current.get("phase"))
            return
        changed = {k: v for k, v in result.status.items() if current.get(k) != v}
        if changed or result.events:
            await known.after_starts()
        if changed:  # an unchanged status is not re-sent: no write, no watch event
            written = await deps.kube.patch_status(
                API_GROUP, API_VERSION, "experiments", key[0], key[1], changed
            )
            if not written:  # gone (404)
                return
            known.statuses[uid] = {**current, **changed}
        metrics.set_phase(key[0], key[1], result.status.get("phase"))
        for kind, reason, message in result.events:
            await _event(body, kind, reason, message, deps)


async def _reconcile_or_failure(
    key: Key, body: dict[str, Any], known: Known, deps: Deps
) -> Result | None:
    """reconcile(), or the status that says why it could not be done (never an exception)."""
    pending = known.retries.pop(key, None)
    if pending is not None:
        pending.cancel()
    try:
        return await reconcile(body, deps)
    except asyncio.CancelledError:
        raise
    except Exception as error:
        failure = classify(error)
        log.warning("%s/%s: %s: %s", key[0], key[1], failure.reason, failure.message)
        metrics.reconcile_failed(failure.reason)
        status, events = failure_status(body, failure, _settle_marks(body, failure.phase))
        if failure.retry_s is not None:
            _retry_later(key, known, deps, failure.retry_s)
        return Result(status, events)


def _settle_marks(body: dict[str, Any], phase: str) -> dict[str, Any]:
    """A Failed status names the spec and retry it failed for, so it is not tried again until
    one of them changes (reconcile's `_settled`)."""
    if phase != FAILED:
        return {}
    from lima_operator.artifacts import spec_digest
    from lima_operator.reconcile import RETRY_ANNOTATION

    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return {
        "specDigest": spec_digest(parse(body)),
        "retry": str(annotations.get(RETRY_ANNOTATION, "0")),
    }


def _retry_later(key: Key, known: Known, deps: Deps, delay: float) -> None:
    loop = asyncio.get_running_loop()

    def fire() -> None:
        known.retries.pop(key, None)
        task = loop.create_task(drive(key, known, deps))
        _background.add(task)
        task.add_done_callback(_background.discard)

    known.retries[key] = loop.call_later(delay, fire)


_background: set[asyncio.Task] = set()


async def _event(body: dict[str, Any], kind: str, reason: str, message: str, deps: Deps) -> None:
    """Through kopf's queue inside its handlers; posted directly from the resync loop."""
    try:
        kopf.event(body, type=kind, reason=reason, message=message)
        return
    except LookupError:  # not in a kopf handler: no event queue in this context
        pass
    meta = body["metadata"]
    stamp = now()
    await deps.kube.post_event(
        meta["namespace"],
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}-", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": body.get("apiVersion"),
                "kind": body.get("kind"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "lima-run-operator"},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        },
    )


async def resync_forever(known: Known, deps_factory: Any, interval: float) -> None:
    """The safety net: every `interval`, reconcile every known Experiment once, in turn."""
    while True:
        await asyncio.sleep(interval)
        for key in list(known.bodies):
            try:
                await drive(key, known, await deps_factory())
            except asyncio.CancelledError:
                raise
            except Exception as error:  # one broken Experiment must not stop the others
                log.warning("resync of %s/%s failed: %s", key[0], key[1], error)
