"""Leader election through a coordination.k8s.io Lease, for more than one operator replica.

Every replica watches (so a new leader starts with everything known), but only the Lease
holder reconciles: the others keep their `Known.active` flag off. The holder renews the Lease
every third of its duration; another replica takes it over when the record has not changed for
a whole duration, measured on its own clock from when it last saw the record change (so clock
skew between nodes does not matter). Writes carry the read resourceVersion: of two replicas
racing for an expired Lease, the API server lets exactly one win (409 for the other).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from lima_operator.kube import ConflictError, KubeClient, KubeError

log = logging.getLogger("lima_operator")


def _micro_time() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        kube: Callable[[], KubeClient],
        namespace: str,
        name: str,
        identity: str,
        duration_s: float,
    ) -> None:
        self.kube, self.namespace, self.name = kube, namespace, name
        self.identity, self.duration_s = identity, duration_s
        self.leading = False
        self._seen: tuple[Any, float] | None = None  # (record, when it last changed)

    async def run(self, on_change: Callable[[bool], Awaitable[None]]) -> None:
        """Try to hold the Lease forever; call `on_change(leading)` on every transition."""
        while True:
            try:
                leading = await self.try_acquire_or_renew()
            except KubeError as error:
                log.warning("leader election: %s", error)
                leading = False
            if leading != self.leading:
                self.leading = leading
                log.info("leader election: %s", "leading" if leading else "standing by")
                await on_change(leading)
            await asyncio.sleep(self.duration_s / 3)

    async def try_acquire_or_renew(self) -> bool:
        client = self.kube()
        lease = await client.get_lease(self.namespace, self.name)
        if lease is None:
            try:
                await client.create_lease(self.namespace, self._lease({}, transitions=0))
            except ConflictError:
                return False  # another replica created it first
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        if holder != self.identity and not self._expired(spec):
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (holder != self.identity)
        try:
            await client.update_lease(self.namespace, self._lease(lease, transitions))
        except ConflictError:
            return False
        return True

    def _expired(self, spec: dict[str, Any]) -> bool:
        record = (spec.get("holderIdentity"), spec.get("renewTime"))
        now = time.monotonic()
        if self._seen is None or self._seen[0] != record:
            self._seen = (record, now)
            return not record[0]  # released (no holder): free to take
        return now - self._seen[1] > self.duration_s

    def _lease(self, old: dict[str, Any], transitions: int) -> dict[str, Any]:
        meta = {"name": self.name, "namespace": self.namespace}
        version = (old.get("metadata") or {}).get("resourceVersion")
        if version:
            meta["resourceVersion"] = version
        stamp = _micro_time()
        held = (old.get("spec") or {}).get("holderIdentity") == self.identity
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(int(self.duration_s), 1),
                "acquireTime": (old.get("spec") or {}).get("acquireTime") if held else stamp,
                "renewTime": stamp,
                "leaseTransitions": transitions,
            },
        }
