"""Run the lima-run operator in-process against kmock (see ../shared/VERIFIED.md).

The operator code is the real one (kopf handlers, reconcile, the real stage graph lima.dag,
RayJob builder, file-backed artifact store); the Kubernetes API is kmock's stateful emulator.
The "RayJobs" are only objects: a test plays KubeRay by writing their status and publishing the
stage's artifact the way `lima stage NAME` would inside the RayJob, with the stage's real result
type (lima.results) validated by the same `Stage.check_result` the runner uses.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kopf
import yaml

from lima import dag
from lima.results import (
    CurateResult,
    GenerateResult,
    JudgeResult,
    ReportResult,
    SelectResult,
    StageResult,
    TrainResult,
)
from lima.settings import Settings
from lima.spec import Experiment
from lima.spec.load import load_experiment, parse_experiment
from lima.store import InputRef, Manifest, open_store


class _SnapshotLoggerDict(dict):
    """logging's registry of loggers, iterated from a snapshot.

    pytest's log capture walks `logging.Logger.manager.loggerDict.values()` in a Python loop at
    the start of every test phase, without logging's lock; the operator thread running in this
    process creates loggers meanwhile (lazy imports, kopf), and the walk then fails with
    "dictionary changed size during iteration". A snapshot (taken in C, under the GIL) cannot.
    The real operator runs in its own process: this only concerns running it inside pytest.
    """

    def values(self):  # type: ignore[override]
        return list(super().values())

    def items(self):  # type: ignore[override]
        return list(super().items())


if not isinstance(logging.Logger.manager.loggerDict, _SnapshotLoggerDict):
    logging.Logger.manager.loggerDict = _SnapshotLoggerDict(logging.Logger.manager.loggerDict)

REPO = Path(__file__).resolve().parents[1]
NS = "ns1"
EXPERIMENTS = "lima-run.io/v1alpha1/experiments"
RAYJOBS = "ray.io/v1/rayjobs"
CONFIGMAPS = "v1/configmaps"
EVENTS = "v1/events"
LEASES = "coordination.k8s.io/v1/leases"
# No resync during a test: progress must come from the watches alone (event-driven).
os.environ.setdefault("LIMA_OPERATOR_RECONCILE_INTERVAL_S", "3600")
os.environ.setdefault("LIMA_OPERATOR_POOLS_CACHE_S", "0")  # each test has its own pools


STAGES = dag.GRAPH


def plain_result(stage: str) -> StageResult:
    """A result of the stage's real type for tests that do not look at its numbers."""
    return {
        "curate": lambda: CurateResult(train=3, dev=1, test=1, tokens=30, quota=3),
        "train": lambda: TrainResult(
            epochs=2, non_padding_fraction=0.9, truncated=0, models=["epoch-1", "epoch-2"]
        ),
        "select": lambda: SelectResult(
            selected_epoch=2, score=0.5, judge="reference", proxy=True, epochs=[1, 2]
        ),
        "generate": lambda: GenerateResult(selected_epoch=2, sets={"test": 1}),
        "judge": lambda: JudgeResult(judge="reference", proxy=True, verdicts=2, invalid=0),
        "report": lambda: ReportResult(figures=[], proxy=True),
    }[stage]()


def example(name: str = "demo") -> dict[str, Any]:
    """The cluster example (s3:// inputs: the operator refuses local paths; it never reads them)."""
    document = yaml.safe_load((REPO / "examples/experiment-cluster.yaml").read_text())
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
        (LEASES, "Lease"),
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
        import lima_operator.handlers  # noqa: F401  (registers the handlers)

        # The operator logs in as on any cluster without a service account: with a kubeconfig
        # (the production code has no test or insecure login of its own).
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(kmock, settings.work_dir.parent)))
        monkeypatch.setenv("LIMA_OPERATOR_NAMESPACE", NS)
        monkeypatch.setenv("LIMA_OPERATOR_METRICS_PORT", "0")
        # The collector tuning is process-wide: not in pytest's process (test_operator tests it).
        monkeypatch.setenv("LIMA_OPERATOR_GC_TUNING", "false")
        monkeypatch.setenv("LIMA_WORK_DIR", str(settings.work_dir))
        if settings.s3_endpoint:  # the operator reads the same store as the test
            monkeypatch.setenv("LIMA_S3_ENDPOINT", settings.s3_endpoint)
            monkeypatch.setenv("LIMA_S3_ACCESS_KEY", settings.s3_access_key.get_secret_value())
            monkeypatch.setenv("LIMA_S3_SECRET_KEY", settings.s3_secret_key.get_secret_value())
            monkeypatch.setenv("LIMA_S3_SECURE", "true" if settings.s3_secure else "false")
            monkeypatch.setenv("LIMA_S3_REGION", settings.s3_region or "us-east-1")
        self.thread: threading.Thread | None = None
        self.stop_flag: threading.Event | None = None

    async def start(self, liveness: str | None = None) -> None:
        """`liveness`: serve kopf's probe endpoint there (e.g. http://127.0.0.1:PORT/healthz)."""
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
                    liveness_endpoint=liveness,
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


def write_kubeconfig(kmock: Any, folder: Path) -> Path:
    """A kubeconfig for kmock's URL with a bearer token (kopf refuses a user-less one)."""
    path = folder / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": str(kmock.url)}}],
                "users": [{"name": "test", "user": {"token": "test-token"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "test"}}],
                "current-context": "kmock",
            }
        )
    )
    return path


async def wait_for(check: Callable[[], Any], timeout: float = 45, what: str = "") -> Any:
    """Poll `check` until truthy. The timeout is a ceiling for a loaded shared machine, not a
    delay: a check returns as soon as it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (KeyError, IndexError, TypeError, AttributeError, RuntimeError):
            # RuntimeError: kmock's dicts are changed by the operator's thread mid-iteration
            value = None
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


def objects(kmock: Any, resource: str) -> dict[str, dict[str, Any]]:
    found = {}
    for (res, _ns, name), obj in list(kmock.objects.items()):  # the operator thread writes
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


def carried_spec(job: dict[str, Any], folder: Path) -> Experiment:
    """The Experiment a RayJob's stage runs, found as the kubelet and `lima stage` find it.

    The entrypoint names a file. It must be the projection of a downward-API volume item
    mounted in the head container (the driver runs on the head): the kubelet writes the head
    pod's annotation `metadata.annotations['<name>']` to `<mountPath>/<path>`. That annotation's
    value is written to `folder` and read with lima's own loader, as `lima stage` reads it.
    """
    words = job["spec"]["entrypoint"].split()
    wanted = words[words.index("--experiment") + 1]
    template = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]
    head = template["spec"]["containers"][0]
    volumes = {v["name"]: v for v in template["spec"].get("volumes", [])}
    for mount in head.get("volumeMounts", []):
        for item in (volumes[mount["name"]].get("downwardAPI") or {}).get("items", []):
            if f"{mount['mountPath'].rstrip('/')}/{item['path']}" != wanted:
                continue
            assert mount.get("readOnly") is True
            field = re.fullmatch(r"metadata\.annotations\['(.+)'\]", item["fieldRef"]["fieldPath"])
            assert field, item
            text = template["metadata"]["annotations"][field.group(1)]
            target = folder / item["path"]
            target.write_text(text)
            return load_experiment(target)
    raise AssertionError(f"{wanted} is not projected into the head container: {head}")


def experiment_status(kmock: Any, name: str = "demo") -> dict[str, Any]:
    return objects(kmock, EXPERIMENTS)[name].get("status") or {}


def publish(
    settings: Settings,
    document: dict[str, Any] | Experiment,
    stage_name: str,
    result: StageResult | None = None,
) -> Manifest:
    """Publish `stage_name`'s artifact as its RayJob would (upstream artifacts must exist)."""
    experiment = (
        document
        if isinstance(document, Experiment)
        else parse_experiment({**document, "metadata": {"name": document["metadata"]["name"]}})
    )
    store = open_store(settings, experiment.spec.storage)
    planned = {p.name: p for p in dag.plan(experiment, store)}
    step = planned[stage_name]
    if step.key is None:
        raise KeyError(f"{stage_name}: an input has no artifact yet")
    stage = step.stage
    inputs = {name: planned[name].manifest for name in stage.inputs}
    folder = settings.scratch_dir / f"out-{stage_name}-{step.key}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.txt").write_text(f"{stage_name} output\n")
    return store.publish(
        stage_name,
        step.key,
        folder,
        code_version=stage.version,
        config=stage.config(experiment),
        inputs=[InputRef(n, m.key, m.digest, m.uri) for n, m in inputs.items()],
        started_at="2026-11-22T00:00:00Z",
        summary=stage.check_result(result or plain_result(stage_name)),
    )


async def set_rayjob_status(kmock: Any, name: str, **status: Any) -> None:
    url = f"/apis/ray.io/v1/namespaces/{NS}/rayjobs/{name}"
    async with kmock.patch(url, json={"status": status}) as response:
        assert response.status < 400, await response.text()
