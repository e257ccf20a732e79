"""A small asyncio client for the few Kubernetes calls the operator makes besides kopf's own.

It reuses the credentials kopf logged in with (service account, kubeconfig, or the
development `LIMA_OPERATOR_API_SERVER`), so there is one notion of "the cluster".
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import kopf

RAYJOBS = "/apis/ray.io/v1/namespaces/{ns}/rayjobs"


class KubeError(RuntimeError):
    pass


def _data_file(data: str | bytes, folder: Path, name: str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    if not raw.lstrip().startswith(b"-----"):  # kubeconfig `*-data` fields are base64
        raw = base64.b64decode(raw)
    path = folder / name
    path.write_bytes(raw)
    path.chmod(0o600)
    return str(path)


def ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if info.insecure:
        return False
    context = ssl.create_default_context(cafile=str(info.ca_path) if info.ca_path else None)
    folder = Path(tempfile.mkdtemp(prefix="lima-operator-"))
    if info.ca_data:
        context.load_verify_locations(cafile=_data_file(info.ca_data, folder, "ca.crt"))
    cert = info.certificate_path or (
        _data_file(info.certificate_data, folder, "tls.crt") if info.certificate_data else None
    )
    key = info.private_key_path or (
        _data_file(info.private_key_data, folder, "tls.key") if info.private_key_data else None
    )
    if cert:
        context.load_cert_chain(str(cert), str(key) if key else None)
    return context


class KubeClient:
    def __init__(self, info: kopf.ConnectionInfo) -> None:
        self.server = info.server.rstrip("/")
        headers = {"Accept": "application/json"}
        if info.token:
            headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
        auth = aiohttp.BasicAuth(info.username, info.password or "") if info.username else None
        connector = aiohttp.TCPConnector(ssl=ssl_context(info), limit=50)
        self.session = aiohttp.ClientSession(
            headers=headers,
            auth=auth,
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=30),
        )

    async def close(self) -> None:
        await self.session.close()

    async def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any] | None:
        async with self.session.request(method, self.server + path, **kw) as response:
            if response.status == 404:
                return None
            if response.status == 409:
                raise ConflictError(await response.text())
            if response.status >= 400:
                text = (await response.text())[:500]
                raise KubeError(f"{method} {path}: HTTP {response.status}: {text}")
            return await response.json(content_type=None)

    async def get_rayjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._call("GET", f"{RAYJOBS.format(ns=namespace)}/{name}")

    async def create_rayjob(self, rayjob: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create, or return the one that already has this deterministic name (no duplicate);
        the flag says whether this call created it."""
        namespace = rayjob["metadata"]["namespace"]
        try:
            created = await self._call("POST", RAYJOBS.format(ns=namespace), json=rayjob)
            new = True
        except ConflictError:
            created = await self.get_rayjob(namespace, rayjob["metadata"]["name"])
            new = False
        if created is None:
            raise KubeError(f"RayJob {namespace}/{rayjob['metadata']['name']} vanished")
        return created, new

    async def delete_rayjob(self, namespace: str, name: str) -> None:
        await self._call(
            "DELETE",
            f"{RAYJOBS.format(ns=namespace)}/{name}",
            json={"propagationPolicy": "Background"},
        )

    async def list_rayjobs(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        found = await self._call(
            "GET", RAYJOBS.format(ns=namespace), params={"labelSelector": selector}
        )
        items = (found or {}).get("items", [])
        # Filter again: a client must not trust that every server honours labelSelector.
        wanted = dict(part.split("=", 1) for part in selector.split(","))
        return [i for i in items if wanted.items() <= (i["metadata"].get("labels") or {}).items()]

    async def patch_status(
        self, group: str, version: str, plural: str, namespace: str, name: str, status: dict
    ) -> dict[str, Any] | None:
        """Merge-patch the status subresource (lists in it are replaced whole)."""
        return await self._call(
            "PATCH",
            f"/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}/status",
            data=json.dumps({"status": status}),
            headers={"Content-Type": "application/merge-patch+json"},
        )

    async def post_event(self, namespace: str, event: dict[str, Any]) -> None:
        await self._call("POST", f"/api/v1/namespaces/{namespace}/events", json=event)

    async def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._call("GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}")


class ConflictError(KubeError):
    pass
