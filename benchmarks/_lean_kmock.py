"""kmock's Kubernetes emulator for benchmarks: same objects and reactions, no request history.

kmock keeps every request it served (for test assertions) and routes each new request by
asking every reaction whether the request is in its filtered view of that whole history: the
cost of one request grows with the number served before it, so a run's cost is quadratic in
its requests. With thousands of requests (100 Experiments) the emulator then costs more CPU
than the operators being measured (profiled: >90% of the benchmark process in
`kmock/_internal/filtering.py`). Here the history holds only the requests being served right
now, newest first: a request is routed exactly as before (the emulator's reactions select by
method/resource, not by position in the history), at a cost that no longer grows.
The requests are still counted, by method and resource, for the report. And like a real API server,
every write gets a new `resourceVersion` and `generateName` makes a name (`_as_api_server`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import kmock


class InFlight(list):
    """The request log reduced to the requests in flight (a `list` so kmock can append)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, Any] = {}
        self.served = 0
        self.counts: Counter[str] = Counter()

    def append(self, request: Any) -> None:
        self.live[id(request)] = request
        self.served += 1
        resource = getattr(request.resource, "plural", None) or "-"
        self.counts[f"{str(request.method).rsplit('.', 1)[-1]} {resource}"] += 1

    def done(self, request: Any) -> None:
        self.live.pop(id(request), None)

    def __iter__(self) -> Iterator[Any]:
        return iter(reversed(list(self.live.values())))

    def __len__(self) -> int:  # kmock numbers requests by the log's length: keep ids unique
        return self.served


class LeanEmulator(kmock.KubernetesEmulator):
    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._requests = InFlight()

    async def _handle(self, request: Any) -> Any:
        self._as_api_server(request)
        try:
            return await super()._handle(request)
        finally:  # routed and answered (or, for a watch, its stream ended)
            self._requests.done(request)

    def _as_api_server(self, request: Any) -> None:
        """What an API server does and kmock does not: a new resourceVersion on every write
        (kopf tells its own patch's watch event from older ones by it), and a name made from
        `generateName` (kopf's Events have none: kmock answers them 409)."""
        action = str(getattr(request, "action", ""))
        if request.resource is None or not isinstance(request.data, dict):
            return
        if action.endswith(("CREATE", "UPDATE")):
            self._version = getattr(self, "_version", 1000) + 1
            meta = request.data.setdefault("metadata", {})
            meta["resourceVersion"] = str(self._version)
            if action.endswith("CREATE") and not meta.get("name") and meta.get("generateName"):
                meta["name"] = f"{meta['generateName']}{self._version:x}"

    @property
    def request_counts(self) -> Counter[str]:
        return self._requests.counts
