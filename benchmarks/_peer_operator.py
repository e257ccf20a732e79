"""The peer of benchmarks/operator_latency.py: the least a kopf operator can do per Experiment.

One on.create handler that POSTs a fixed RayJob: no spec parsing, no artifact store, no pools,
no status. Its latency is the floor that kopf + the API (kmock) impose on lima-run's operator.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp
import kopf

SERVER = os.environ["LIMA_OPERATOR_API_SERVER"]  # set by operator_latency.py for the peer only
_session: list[aiohttp.ClientSession] = []


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.scanning.disabled = True
    settings.posting.enabled = False


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    return kopf.ConnectionInfo(server=SERVER, scheme="Bearer", token="dev", insecure=True)


@kopf.on.create("lima-run.io", "v1alpha1", "experiments")
async def create(body: kopf.Body, **_: Any) -> None:
    if not _session:
        _session.append(aiohttp.ClientSession())
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    job = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {
            "name": f"{name}-curate-peer",
            "namespace": namespace,
            "labels": {"lima-run.io/experiment": name},
        },
        "spec": {"entrypoint": "python -m jobs.curate"},
    }
    kopf.adopt(job, owner=body)
    url = f"{SERVER}/apis/ray.io/v1/namespaces/{namespace}/rayjobs"
    async with _session[0].post(url, json=job) as response:
        if response.status != 409:  # 409: created by an earlier attempt of this handler
            response.raise_for_status()
