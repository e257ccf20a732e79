"""The Helm chart, rendered and strictly linted by real Helm (helm-python-sdk).

Every object is validated against Kubernetes' schemas, and the RayJobs that the chart's
configuration yields against KubeRay's own CRD.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path
from typing import Any
from unittest import mock

import helm_python
import kubernetes_validate
import pytest
import yaml
from fake_admission import (
    KUBERAY_CRDS,
    NEWEST,
    OLDEST,
    autoscaler_problems,
    kuberay_problems,
    kueue_webhook,
    pruned_fields,
    schema_errors,
)
from k8s_helpers import crd_validator, errors, rayjob_validator
from lima_operator.config import OperatorConfig

from lima.k8s.crd import render_crd
from lima.k8s.kuberay import SUPPORTED_RANGE
from lima.k8s.pools import load_pools
from lima.k8s.rayjob import S3Ref, build_rayjob
from lima.settings import Settings
from lima.spec.load import parse_experiment

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "helm/lima-run"
K8S_VERSION = "1.35"
STAGES = ["curate", "train", "select", "generate", "judge", "report"]
CREDENTIAL_ENV = {
    "LIMA_S3_ACCESS_KEY",
    "LIMA_S3_SECRET_KEY",
    "MINIO_ROOT_USER",
    "MINIO_ROOT_PASSWORD",
    "LIMA_JUDGE_API_KEY",
}
DEMO_SPEC = yaml.safe_load((REPO / "examples/experiment-cluster.yaml").read_text())["spec"]
GPU_POOL = {
    "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "gpuType": "H100",
    "gpusPerWorker": 8,
    "cpusPerWorker": 96,
    "memoryPerWorker": "1000Gi",
    "minWorkers": 0,
    "maxWorkers": 4,
}
GPU_SPEC = {
    **DEMO_SPEC,
    "resources": {
        **DEMO_SPEC["resources"],
        "train": {"pool": "gpu-h100", "workers": 2, "gpus": 8, "cpus": 32, "memory": "512Gi"},
        "generate": {"pool": "gpu-h100", "workers": 1, "gpus": 1, "queue": "gpu-queue"},
    },
}
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "gpu-pools": {
        "pools": {"cpu": {"cpusPerWorker": 8, "memoryPerWorker": "32Gi"}, "gpu-h100": GPU_POOL},
        "experiments": [{"name": "gpu-demo", "spec": GPU_SPEC}],
    },
    "external-s3": {
        "minio": {"enabled": False},
        "externalS3": {
            "endpoint": "s3.eu-west-1.amazonaws.com",
            "secure": True,
            "region": "eu-west-1",
            "accessKey": "AKIAEXAMPLEKEY000001",
            "secretKey": "wJalrXUtnFEMI-example-secret-key-0000001",
        },
        "s3": {"bucket": "team-lima"},
    },
    "existing-secret": {
        "s3": {
            "existingSecret": "my-s3",
            "accessKeyKey": "AWS_ACCESS_KEY_ID",
            "secretKeyKey": "AWS_SECRET_ACCESS_KEY",
        },
        "operator": {"watchAllNamespaces": True},
    },
    "kueue": {"kueue": {"enabled": True, "defaultQueue": "lima-queue"}},
    "kueue-gpu": {
        "kueue": {"enabled": True, "defaultQueue": "lima-queue"},
        "pools": {"cpu": {"maxWorkers": 8}, "gpu-h100": GPU_POOL},
        "experiments": [{"name": "gpu-demo", "spec": GPU_SPEC}],
    },
    "ha-namespaces": {  # two replicas, named namespaces, per-pool and head overrides
        "operator": {"replicas": 2, "watchNamespaces": ["team-a", "team-b"]},
        "imagePullSecrets": [{"name": "registry"}],
        "ray": {"head": {"nodeSelector": {"pool": "system"}, "priorityClassName": "ops"}},
        "pools": {
            "cpu": {},
            "gpu-h100": {
                **GPU_POOL,
                "image": "ghcr.io/lima-run/runtime:0.1.0-cuda",
                "priorityClassName": "training",
                "volumes": [{"name": "hf", "persistentVolumeClaim": {"claimName": "hf-cache"}}],
                "volumeMounts": [{"name": "hf", "mountPath": "/cache/hf"}],
                "imagePullSecrets": [{"name": "gpu-registry"}],
            },
        },
        "experiments": [{"name": "gpu-demo", "spec": GPU_SPEC}],
    },
    "experiments": {
        "experiments": [{"name": "demo", "spec": DEMO_SPEC}],
        "judge": {"baseUrl": "http://vllm:8000/v1", "existingSecret": "judge-key"},
    },
}


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    chart = helm_python.Chart.load(str(CHART))
    out = chart.render(values=values, name="lima", namespace="ml", is_install=True)
    docs = []
    for path, text in out.items():
        if path.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


@pytest.fixture(scope="module", params=list(VARIANTS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(VARIANTS[request.param])


def _of(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _pods(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        d["spec"]["template"]["spec"]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet", "Job")
    ]


def missing_dependencies(chart: Path) -> list[str]:
    """Helm's rule: every Chart.yaml dependency must be in charts/ (a folder or a .tgz of that
    name and version), whatever its `condition:`; `helm install` refuses the chart otherwise."""
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    charts = chart / "charts"
    present = set()
    for item in charts.iterdir() if charts.is_dir() else []:
        if item.is_dir() and (item / "Chart.yaml").is_file():
            sub = yaml.safe_load((item / "Chart.yaml").read_text())
            present.add((sub["name"], str(sub["version"])))
        elif item.name.endswith(".tgz"):
            name, _, version = item.name.removesuffix(".tgz").rpartition("-")
            present.add((name, version))
    return [
        d["name"]
        for d in meta.get("dependencies") or []
        if (d["name"], str(d.get("version"))) not in present
    ]


def test_lint_strict(rendered) -> None:
    name, _ = rendered
    result = helm_python.lint(str(CHART), VARIANTS[name], strict=True, namespace="ml")
    assert [m["error"] for m in result["messages"] if m["severity"] >= 2] == []


def test_chart_installs_under_helms_dependency_rule() -> None:
    assert missing_dependencies(CHART) == []
    assert all(d["status"] == "ok" for d in helm_python.dependency_list(str(CHART)))


def test_dependency_rule_fails_on_a_conditional_missing_subchart(tmp_path: Path) -> None:
    """The rule above can fail: the chart as it was (an optional, unvendored KubeRay)."""
    copy = tmp_path / "lima-run"
    shutil.copytree(CHART, copy)
    meta = yaml.safe_load((copy / "Chart.yaml").read_text())
    meta["dependencies"] = [
        {
            "name": "kuberay-operator",
            "version": "1.4.2",
            "repository": "https://ray-project.github.io/kuberay-helm/",
            "condition": "kuberay.enabled",
        }
    ]
    (copy / "Chart.yaml").write_text(yaml.safe_dump(meta))
    assert missing_dependencies(copy) == ["kuberay-operator"]
    assert [d["status"] for d in helm_python.dependency_list(str(copy))] == ["missing"]
    result = helm_python.lint(str(copy), {}, strict=True, namespace="ml")
    assert any("missing these dependencies" in m["error"] for m in result["messages"])


def test_supported_kuberay_range_is_declared_once() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["annotations"]["lima-run.io/kuberay-versions"] == SUPPORTED_RANGE
    assert SUPPORTED_RANGE.startswith(f">={OLDEST} ") and SUPPORTED_RANGE.endswith(NEWEST)


def test_every_object_validates(rendered) -> None:
    _, docs = rendered
    experiment_schema = crd_validator(render_crd(), "v1alpha1")
    for doc in docs:
        if doc["kind"] == "Experiment":
            assert errors(experiment_schema, doc) == [], doc["metadata"]["name"]
            parse_experiment({**doc, "metadata": {"name": doc["metadata"]["name"]}})
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        labels = doc["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/name") == "lima-run", doc["kind"]
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", doc["kind"]


def test_restricted_pod_security_and_requests(rendered) -> None:
    _, docs = rendered
    for pod in _pods(docs):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert security["readOnlyRootFilesystem"] is True
            assert container["resources"]["requests"], container["name"]


def test_no_secret_literal_outside_the_secret(rendered) -> None:
    name, docs = rendered
    secrets = _of(docs, "Secret")
    if VARIANTS[name].get("s3", {}).get("existingSecret"):
        assert secrets == []
        return
    assert len(secrets) == 1
    values = [base64.b64decode(v).decode() for v in secrets[0]["data"].values()]
    assert all(len(v) >= 12 for v in values)
    for doc in docs:
        if doc["kind"] != "Secret":
            text = json.dumps(doc)
            assert not any(v in text for v in values), f"credential in {doc['kind']}"
    for pod in _pods(docs):
        for container in pod["containers"]:
            for env in container.get("env", []):
                if env["name"] in CREDENTIAL_ENV:
                    assert "valueFrom" in env, env["name"]


OPERATOR_RULES = {
    ("lima-run.io", "experiments"): {"list", "watch"},
    ("lima-run.io", "experiments/status"): {"patch"},
    ("lima-run.io", "experiments/finalizers"): {"update"},
    ("ray.io", "rayjobs"): {"get", "list", "watch", "create", "delete"},
    ("", "events"): {"create"},
}


def _rules(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    rules: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                rules.setdefault((group, resource), set()).update(rule["verbs"])
    return rules


def test_least_privilege_rbac(rendered) -> None:
    name, docs = rendered
    values = VARIANTS[name].get("operator", {})
    cluster_wide = values.get("watchAllNamespaces", False)
    operator_roles = [
        r
        for r in _of(docs, "Role") + _of(docs, "ClusterRole")
        if r["metadata"]["name"] == "lima-lima-run-operator"
    ]
    for role in operator_roles:
        assert _rules(role) == OPERATOR_RULES
    namespaces = values.get("watchNamespaces") or ["ml"]
    if cluster_wide:
        assert [r["kind"] for r in operator_roles] == ["ClusterRole"]
    else:
        assert sorted(r["metadata"]["namespace"] for r in operator_roles) == sorted(namespaces)
    self_role = next(r for r in _of(docs, "Role") if r["metadata"]["name"].endswith("-self"))
    assert _rules(self_role) == {
        ("", "configmaps"): {"get"},
        ("coordination.k8s.io", "leases"): {"create", "get", "patch"},
    }
    assert self_role["rules"][0]["resourceNames"] == ["lima-lima-run-pools"]
    crd_role = next(r for r in _of(docs, "ClusterRole") if r["metadata"]["name"].endswith("crd"))
    assert crd_role["rules"] == [
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "resourceNames": ["rayjobs.ray.io"],
            "verbs": ["get"],
        }
    ]
    args = _of(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert ("--all-namespaces" in args) == cluster_wide
    if not cluster_wide:
        assert [a for a in args if a.startswith("--namespace=")] == [
            f"--namespace={n}" for n in namespaces
        ]


def test_aggregated_roles_and_network_policy(rendered) -> None:
    name, docs = rendered
    roles = {r["metadata"]["name"].rsplit("-", 1)[-1]: r for r in _of(docs, "ClusterRole")}
    editor, viewer = roles["editor"], roles["viewer"]
    assert editor["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert {"create", "patch", "delete"} <= _rules(editor)[("lima-run.io", "experiments")]
    assert viewer["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert _rules(viewer)[("lima-run.io", "experiments")] == {"get", "list", "watch"}
    values = VARIANTS[name].get("operator", {})
    policies = _of(docs, "NetworkPolicy")
    expected = values.get("watchNamespaces") or ["ml"]
    assert sorted(p["metadata"]["namespace"] for p in policies) == sorted(expected)
    for policy in policies:
        selector = policy["spec"]["podSelector"]
        assert selector["matchExpressions"] == [{"key": "ray.io/node-type", "operator": "Exists"}]
        kuberay = policy["spec"]["ingress"][1]
        assert kuberay["ports"] == [{"protocol": "TCP", "port": 8265}]


def test_leader_election_for_replicas(rendered) -> None:
    name, docs = rendered
    deployment = _of(docs, "Deployment")[0]
    replicas = VARIANTS[name].get("operator", {}).get("replicas", 1)
    assert deployment["spec"]["replicas"] == replicas
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LIMA_OPERATOR_LEADER_ELECTION"]["value"] == "true"
    assert env["LIMA_OPERATOR_IDENTITY"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    with pytest.raises(helm_python.HelmError, match="leaderElection"):
        helm_python.Chart.load(str(CHART)).render(
            values={"operator": {"replicas": 2, "leaderElection": {"enabled": False}}},
            name="lima",
            namespace="ml",
        )


def _operator_config(docs: list[dict[str, Any]]) -> tuple[OperatorConfig, Settings]:
    """The operator's configuration exactly as the chart's Deployment sets it (through the
    environment, as in the pod: JSON values are decoded the same way)."""
    container = _of(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LIMA_")}
    with mock.patch.dict(os.environ, {**clean, **env}, clear=True):
        return OperatorConfig(), Settings(_env_file=None)


def _chart_rayjobs(docs: list[dict[str, Any]], pre_running: bool) -> list[tuple[str, dict]]:
    config, settings = _operator_config(docs)
    pools = load_pools(_of(docs, "ConfigMap")[0]["data"]["pools.yaml"])
    experiments = [
        {**e, "metadata": {"name": e["metadata"]["name"]}} for e in _of(docs, "Experiment")
    ] or [
        {
            "apiVersion": "lima-run.io/v1alpha1",
            "kind": "Experiment",
            "metadata": {"name": "demo"},
            "spec": DEMO_SPEC,
        }
    ]
    s3 = config.s3_ref(settings)
    assert isinstance(s3, S3Ref) and s3.secret
    options = config.rayjob_options(settings, pre_running_deadline=pre_running)
    jobs = []
    for document in experiments:
        experiment = parse_experiment(document)
        for stage in STAGES:
            res = getattr(experiment.spec.resources, stage, None)
            job = build_rayjob(
                experiment,
                stage,
                key="k" * 32,
                spec_uri="s3://lima/specs/x.json",
                namespace="ml",
                image=config.image,
                pool=pools[res.pool if res else "cpu"],
                s3=s3,
                options=options,
            )
            jobs.append((stage, job))
    return jobs


@pytest.mark.skipif(not KUBERAY_CRDS[OLDEST].is_file(), reason="../shared/schemas is absent")
def test_rayjobs_from_chart_config_are_admitted_by_oldest_and_newest_kuberay(rendered) -> None:
    """Built as the operator builds them from the chart's configuration, on the oldest and the
    newest supported KubeRay (pre-running deadline only where the CRD declares it); Kueue's
    webhook and KubeRay's autoscaler accept them."""
    name, docs = rendered
    kueue = VARIANTS[name].get("kueue", {}).get("enabled", False)
    for version, pre_running in ((OLDEST, False), (NEWEST, True)):
        for stage, job in _chart_rayjobs(docs, pre_running):
            where = (name, version, stage)
            assert schema_errors(job, version) == [], where
            assert pruned_fields(job, version) == [], where
            assert autoscaler_problems(job) == [] and kuberay_problems(job) == [], where
            assert kueue_webhook(job) == [], where
            assert ("preRunningDeadlineSeconds" in job["spec"]) == pre_running
            if kueue:
                assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] in (
                    "lima-queue",
                    "gpu-queue",
                )
                assert job["spec"]["suspend"] is True
                assert job["spec"]["rayClusterSpec"]["enableInTreeAutoscaling"] is False
            group = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
            worker = group["template"]["spec"]
            if "gpu" in name and stage == "train":
                assert worker["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
                assert worker["tolerations"][0]["key"] == "nvidia.com/gpu"
            if name == "ha-namespaces" and stage == "train":
                head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
                assert head["priorityClassName"] == "ops"
                assert worker["priorityClassName"] == "training"
                assert worker["containers"][0]["image"].endswith("-cuda")
                assert [s["name"] for s in worker["imagePullSecrets"]] == [
                    "registry",
                    "gpu-registry",
                ]


def test_rayjobs_from_chart_config_validate_against_kuberay(rendered) -> None:
    name, docs = rendered
    validator = rayjob_validator()
    if validator is None:
        pytest.skip("../shared/schemas absent: RayJobs built but not checked against KubeRay")
    for stage, job in _chart_rayjobs(docs, pre_running=True):
        assert errors(validator, job) == [], (name, stage)


def test_values_schema_rejects_bad_values() -> None:
    chart = helm_python.Chart.load(str(CHART))
    for bad in (
        {"pools": {"Bad_Name": {}}},
        {"pools": {"gpu": {"gpusPerWorker": -1}}},
        {"operator": {"unknown": 1}},
        {"experiments": [{"name": "x" * 31, "spec": {}}]},
    ):
        with pytest.raises(helm_python.HelmError):
            chart.render(values=bad, name="lima", namespace="ml")


def test_values_are_all_commented() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("-"):
            continue
        key, _, value = stripped.partition(":")
        if value.strip() in ("", "{}") and not value.strip():
            continue  # a section header; its leaves carry the comments
        above = lines[number - 1].strip() if number else ""
        assert above.startswith("#"), f"values.yaml:{number + 1}: {key} has no comment"


def test_e2e_script_passes_shellcheck() -> None:
    """scripts/e2e.sh cannot run here (no cluster): it is at least checked by shellcheck."""
    import subprocess

    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    found = subprocess.run(
        ["shellcheck", str(REPO / "scripts/e2e.sh")], capture_output=True, text=True, check=False
    )
    assert found.returncode == 0, found.stdout


def test_e2e_experiment_fits_the_e2e_chart_values() -> None:
    """The Experiment scripts/e2e.sh applies is admitted by the pools it installs the chart with
    (values read from the script's own `--set` flags, the spec from its own rewrite)."""
    import re

    from lima.k8s.pools import check_pools

    script = (REPO / "scripts/e2e.sh").read_text()
    values: dict[str, Any] = {}
    for path, value in re.findall(r"--set (pools\.cpu\.[A-Za-z]+)=(\S+)", script):
        values.setdefault("pools", {}).setdefault("cpu", {})[path.rsplit(".", 1)[-1]] = (
            int(value) if value.isdigit() else value
        )
    assert values["pools"]["cpu"]["maxWorkers"] == 1
    docs = render(values)
    pools = load_pools(_of(docs, "ConfigMap")[0]["data"]["pools.yaml"])
    rewrite = re.search(r"<<'PY'.*?\n(.*?)\nPY\n", script, re.S).group(1)
    import subprocess
    import sys

    applied = subprocess.run(
        [sys.executable, "-c", rewrite], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    document = yaml.safe_load(applied)
    experiment = parse_experiment(document)
    assert check_pools(experiment, pools) == []
