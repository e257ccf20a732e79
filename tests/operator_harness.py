"""Run the lima-run operator in-process against kmock (see ../shared/VERIFIED.md).

The operator code is the real one (kopf handlers, reconcile, RayJob builder, file-backed
artifact store); the Kubernetes API is kmock's stateful emulator. The "RayJobs" are only
objects: a test plays KubeRay by writing their status and publishing the stage's artifact the
way `jobs/<stage>.py` would.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kopf
import yaml

from lima.runner import stage_key
from lima.settings import Settings
from lima.spec.load import parse_experiment
from lima.stages import Stage, StageContext
from lima.store import InputRef, Manifest, open_store

REPO = Path(__file__).resolve().parents[1]
NS = "ns1"
EXPERIMENTS = "lima-run.io/v1alpha1/experiments"
RAYJOBS = "ray.io/v1/rayjobs"
CONFIGMAPS = "v1/configmaps"
EVENTS = "v1/events"
# No resync during a test: progress must come from the watches alone (event-driven).
os.environ.setdefault("LIMA_OPERATOR_RECONCILE_INTERVAL_S", "3600")
os.environ.setdefault("LIMA_OPERATOR_POOLS_CACHE_S", "0")  # each test has its own pools


def _never_runs(ctx: StageContext) -> None:  # the RayJob runs stages, never the operator
    raise AssertionError("the operator must not run stage code")


def _stage(name: str, inputs: tuple[str, ...], section: str) -> Stage:
    return Stage(name, "1", inputs, lambda e: e.spec.model_dump(mode="json")[section], _never_runs)


STAGES = [
    _stage("curate", (), "data"),
    _stage("train", ("curate",), "train"),
    _stage("report", ("train",), "judge"),
]


def example(name: str = "demo") -> dict[str, Any]:
    document = yaml.safe_load((REPO / "examples/experiment.yaml").read_text())
    document["metadata"] = {
        "name": name,
        "namespace": NS,
        "uid": f"uid-{name}",
        "generation": 1,
        "resourceVersion": "1",
    }
    return document


def declare(kmock: Any) -> None:
    # kopf waits for the Namespace resource to be discoverable before it watches anything.
    namespaces = kmock.resources["v1/namespaces"]
    namespaces.kind, namespaces.namespaced, namespaces.verbs = "Namespace", False, {"list", "watch"}
    for resource, kind in (
        (EXPERIMENTS, "Experiment"),
        (RAYJOBS, "RayJob"),
        (CONFIGMAPS, "ConfigMap"),
        (EVENTS, "Event"),
    ):
        info = kmock.resources[resource]
        info.kind, info.namespaced = kind, True
        info.verbs = {"list", "watch", "get", "patch", "create", "delete", "update"}


class Operator:
    """Start/stop the real operator, in its own thread and event loop.

    kopf cancels every task created in its loop after it started when it stops (pytest's fixture
    teardown included), so it gets a loop of its own; it only talks HTTP to kmock anyway.
    """

    def __init__(self, kmock: Any, settings: Settings, monkeypatch: Any) -> None:
        import lima_operator.handlers  # registers the handlers
        import lima_operator.pipeline

        monkeypatch.setattr(lima_operator.pipeline, "load_stages", lambda: list(STAGES))
        monkeypatch.setattr(lima_operator.handlers, "load_stages", lambda: list(STAGES))
        monkeypatch.setenv("LIMA_OPERATOR_API_SERVER", str(kmock.url))
        monkeypatch.setenv("LIMA_OPERATOR_NAMESPACE", NS)
        monkeypatch.setenv("LIMA_OPERATOR_METRICS_PORT", "0")
        monkeypatch.setenv("LIMA_WORK_DIR", str(settings.work_dir))
        self.thread: threading.Thread | None = None
        self.stop_flag: threading.Event | None = None

    async def start(self) -> None:
        settings = kopf.OperatorSettings()
        settings.scanning.disabled = True
        self.stop_flag = threading.Event()
        flag = self.stop_flag

        def run() -> None:
            asyncio.run(
                kopf.operator(
                    settings=settings,
                    namespaces=[NS],
                    standalone=True,
                    stop_flag=flag,
                )
            )

        self.thread = threading.Thread(target=run, name="lima-operator", daemon=True)
        self.thread.start()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    async def stop(self) -> None:
        assert self.stop_flag is not None and self.thread is not None
        self.stop_flag.set()
        await asyncio.to_thread(self.thread.join, 20)
        assert not self.thread.is_alive(), "the operator did not stop"


async def wait_for(check: Callable[[], Any], timeout: float = 15, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (KeyError, IndexError, TypeError, AttributeError):
            value = None
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


def objects(kmock: Any, resource: str) -> dict[str, dict[str, Any]]:
    found = {}
    for (res, _ns, name), obj in kmock.objects.items():
        if str(res.plural) == resource.rsplit("/", 1)[-1] and not obj.deleted:
            found[name] = obj.raw
    return found


def requests(kmock: Any) -> list[Any]:
    """Every request kmock has served (iterating the handler yields them)."""
    return list(kmock)


def posted_events(kmock: Any, reason: str) -> list[dict[str, Any]]:
    """Events the operator POSTed (kmock stores one per generateName, so read the requests)."""
    return [
        r.data
        for r in requests(kmock)
        if str(r.method).endswith("POST")
        and r.resource is not None
        and r.resource.plural == "events"
        and (r.data or {}).get("reason") == reason
    ]


def experiment_status(kmock: Any, name: str = "demo") -> dict[str, Any]:
    return objects(kmock, EXPERIMENTS)[name].get("status") or {}


def publish(
    settings: Settings,
    document: dict[str, Any],
    stage_name: str,
    summary: dict[str, Any] | None = None,
) -> Manifest:
    """Publish `stage_name`'s artifact as its RayJob would (upstream artifacts must exist)."""
    experiment = parse_experiment({**document, "metadata": {"name": document["metadata"]["name"]}})
    store = open_store(settings, experiment.spec.storage)
    done: dict[str, Manifest] = {}
    for stage in STAGES:
        inputs = {name: done[name] for name in stage.inputs}
        key = stage_key(experiment, stage, inputs)
        if stage.name != stage_name:
            done[stage.name] = store.manifest(stage.name, key)
            continue
        folder = settings.scratch_dir / f"out-{stage_name}-{key}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "result.txt").write_text(f"{stage_name} output\n")
        return store.publish(
            stage_name,
            key,
            folder,
            code_version=stage.version,
            config=stage.config(experiment),
            inputs=[InputRef(n, m.key, m.digest, m.uri) for n, m in inputs.items()],
            started_at="2026-11-22T00:00:00Z",
            summary=summary or {},
        )
    raise KeyError(stage_name)


async def set_rayjob_status(kmock: Any, name: str, **status: Any) -> None:
    url = f"/apis/ray.io/v1/namespaces/{NS}/rayjobs/{name}"
    async with kmock.patch(url, json={"status": status}) as response:
        assert response.status < 400, await response.text()
