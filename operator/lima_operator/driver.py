"""Drive one Experiment: the one place its status is written, one reconcile at a time.

Three things ask for a reconcile: kopf's create/resume/update handlers of the Experiment, the
watch on its RayJobs (a status change), and a slow resync loop (a safety net for anything
missed). They can overlap, so each Experiment has a lock, and a reconcile starts from the
status last written here (the Experiment watch may not have delivered it yet): the operator is
the only writer of `status`, so no stale read can repeat an event or reset a start time.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import kopf

from lima.spec import API_GROUP, API_VERSION
from lima_operator import metrics
from lima_operator.reconcile import Deps, reconcile
from lima_operator.status import now

log = logging.getLogger("lima_operator")
Key = tuple[str, str]  # (namespace, name)


@dataclass
class Known:
    """What the watches told this process; rebuilt on every operator start."""

    bodies: dict[Key, dict[str, Any]] = field(default_factory=dict)
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)  # by uid: last written
    rayjobs: dict[Key, dict[str, Any]] = field(default_factory=dict)
    locks: dict[Key, asyncio.Lock] = field(default_factory=dict)
    triggers: dict[Key, str] = field(default_factory=dict)  # what the last reconcile acted on

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


async def drive(key: Key, known: Known, deps: Deps) -> None:
    """Reconcile the Experiment `key` (if still known) and write what changed."""
    lock = known.locks.setdefault(key, asyncio.Lock())
    async with lock:
        body = known.bodies.get(key)
        if body is None:  # deleted meanwhile
            return
        uid = body["metadata"].get("uid") or ""
        current = known.statuses.get(uid, body.get("status") or {})
        result = await reconcile({**body, "status": current}, deps)
        if result is None:
            metrics.set_phase(key[0], key[1], current.get("phase"))
            return
        changed = {k: v for k, v in result.status.items() if current.get(k) != v}
        if changed:  # an unchanged status is not re-sent: no write, no watch event
            written = await deps.kube.patch_status(
                API_GROUP, API_VERSION, "experiments", key[0], key[1], changed
            )
            if written is None:  # gone (404)
                return
            known.statuses[uid] = {**current, **changed}
        metrics.set_phase(key[0], key[1], result.status.get("phase"))
        for kind, reason, message in result.events:
            await _event(body, kind, reason, message, deps)


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
                await drive(key, known, deps_factory())
            except asyncio.CancelledError:
                raise
            except Exception as error:  # one broken Experiment must not stop the others
                log.warning("resync of %s/%s failed: %s", key[0], key[1], error)
