"""A small asyncio client for the few Kubernetes calls the operator makes besides kopf's own.

It reuses the credentials kopf logged in with (service account or kubeconfig), so there is one
notion of "the cluster". Every call has a deadline; an API error keeps its HTTP status and the
API server's message, so the Experiment's status can say what went wrong (403, 404, 422...).
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
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"


class KubeError(RuntimeError):
    """An API call that failed: `status` is the HTTP status (0: no answer)."""

    def __init__(self, status: int, what: str, message: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {message}" if status else f"{what}: {message}")
        self.status, self.what, self.message = status, what, message


def _api_message(text: str) -> str:
    """The `message` of a Kubernetes Status body, else the body's start."""
    try:
        body = json.loads(text)
    except ValueError:
        return text[:500]
    return str(body.get("message") or text)[:500] if isinstance(body, dict) else text[:500]


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
    def __init__(self, info: kopf.ConnectionInfo, timeout_s: float = 30.0) -> None:
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
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        )

    async def close(self) -> None:
        await self.session.close()

    async def _call(
        self, method: str, path: str, *, missing_ok: bool = True, answer: bool = True, **kw: Any
    ) -> dict[str, Any] | None:
        """The JSON answer; None for a 404 when `missing_ok` (a GET of what may not exist).
        `answer=False`: the caller needs only success; the body is read, not decoded ({})."""
        what = f"{method} {path}"
        try:
            async with self.session.request(method, self.server + path, **kw) as response:
                if response.status == 404 and missing_ok:
                    return None
                if response.status >= 400:
                    kind = ConflictError if response.status == 409 else KubeError
                    raise kind(response.status, what, _api_message(await response.text()))
                if not answer:
                    await response.read()  # the connection goes back to the pool
                    return {}
                return await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise KubeError(
                0, what, f"no answer from the API server ({type(error).__name__})"
            ) from None

    async def get_rayjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._call("GET", f"{RAYJOBS.format(ns=namespace)}/{name}")

    async def create_rayjob(self, rayjob: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create, or return the one that already has this deterministic name (no duplicate);
        the flag says whether this call created it (then the RayJob returned is `rayjob`)."""
        namespace = rayjob["metadata"]["namespace"]
        try:
            # The answer is not decoded (the RayJob carries its spec: tens of KiB of JSON in a
            # burst): a new RayJob has no status yet, which is all the caller reads of it, and
            # the RayJob watch delivers the stored object.
            await self._call(
                "POST", RAYJOBS.format(ns=namespace), json=rayjob, missing_ok=False, answer=False
            )
            created, new = rayjob, True
        except ConflictError:
            created = await self.get_rayjob(namespace, rayjob["metadata"]["name"])
            new = False
        if created is None:
            name = rayjob["metadata"]["name"]
            raise KubeError(404, f"GET RayJob {namespace}/{name}", "vanished after a conflict")
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
    ) -> bool:
        """Merge-patch the status subresource (lists in it are replaced whole); False: the
        object is gone (404)."""
        written = await self._call(
            "PATCH",
            f"/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}/status",
            data=json.dumps({"status": status}),
            headers={"Content-Type": "application/merge-patch+json"},
            answer=False,
        )
        return written is not None

    async def post_event(self, namespace: str, event: dict[str, Any]) -> None:
        await self._call("POST", f"/api/v1/namespaces/{namespace}/events", json=event, answer=False)

    async def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._call("GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}")

    async def get_crd(self, name: str) -> dict[str, Any] | None:
        return await self._call("GET", f"{CRDS}/{name}")

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._call("GET", f"{LEASES.format(ns=namespace)}/{name}")

    async def create_lease(self, namespace: str, lease: dict[str, Any]) -> dict[str, Any] | None:
        return await self._call("POST", LEASES.format(ns=namespace), json=lease, missing_ok=False)

    async def update_lease(self, namespace: str, lease: dict[str, Any]) -> dict[str, Any] | None:
        """Merge-patch carrying the read resourceVersion: the API server then applies it only
        if the Lease is unchanged since (409 otherwise), so of two writers one wins."""
        name = lease["metadata"]["name"]
        return await self._call(
            "PATCH",
            f"{LEASES.format(ns=namespace)}/{name}",
            data=json.dumps(lease),
            headers={"Content-Type": "application/merge-patch+json"},
            missing_ok=False,
        )


class ConflictError(KubeError):
    pass
