#!/usr/bin/env bash
# The real-cluster path, end to end, as docs/kubernetes.md describes it:
#   KubeRay (prerequisite) -> `helm install` this chart -> `lima data push` the demo data into
#   the chart's MinIO -> `kubectl apply` examples/experiment-cluster.yaml -> wait for Succeeded.
#
# Uses the current kubectl context when it reaches a cluster; otherwise creates a kind (or k3d)
# cluster named lima-e2e. Prints "no cluster" and exits 0 where none of that is possible.
#
# A laptop cluster needs about 4 CPUs and 8 GiB free for it (Docker Desktop: 6 CPUs / 10 GiB):
# KubeRay ~0.1 CPU / 0.5 GiB, the operator 0.1 / 0.25, MinIO 0.25 / 0.5, and one stage at a
# time: its head 0.5 / 1 GiB, its job submitter 0.1 / 0.25 and the workers below (the
# autoscaler sidecar, 0.5 / 0.5 GiB, only on elastic pools; this run uses a fixed pool).
#
# Knobs: E2E_TIMEOUT (seconds, default 3600), E2E_NAMESPACE (lima), KUBERAY_VERSION (1.4.2,
# the oldest supported; see Chart.yaml's lima-run.io/kuberay-versions), E2E_REGISTRY (push the
# images there for an existing cluster), E2E_KEEP=1 keeps a cluster this script created.
set -euo pipefail

NS="${E2E_NAMESPACE:-lima}"
TIMEOUT="${E2E_TIMEOUT:-3600}"
KUBERAY_VERSION="${KUBERAY_VERSION:-1.4.2}"
REGISTRY="${E2E_REGISTRY:-lima-run}"
CLUSTER=lima-e2e
RELEASE=lima
TAG=e2e
CREATED=""
FORWARD=""
cd "$(dirname "$0")/.."
LIMA=.venv/bin/lima

have() { command -v "$1" >/dev/null 2>&1; }
say() { printf '\n== %s\n' "$*"; }

cleanup() {
  if [[ -n "$FORWARD" ]]; then kill "$FORWARD" 2>/dev/null || true; fi
  if [[ -n "$CREATED" && -z "${E2E_KEEP:-}" ]]; then
    say "deleting the $CREATED cluster $CLUSTER"
    if [[ "$CREATED" == kind ]]; then kind delete cluster --name "$CLUSTER"; else k3d cluster delete "$CLUSTER"; fi
  fi
}
trap cleanup EXIT

docker_up() { have docker && docker info >/dev/null 2>&1; }

pick_cluster() {
  if have kubectl && kubectl version --request-timeout=5s >/dev/null 2>&1; then
    say "using kubectl context $(kubectl config current-context)"
  elif docker_up && have kind; then
    kind create cluster --name "$CLUSTER" --wait 120s && CREATED=kind
  elif docker_up && have k3d; then
    k3d cluster create "$CLUSTER" --wait && CREATED=k3d
  else
    echo "no cluster: no reachable kubectl context, and no kind/k3d with a Docker engine; skipping e2e"
    exit 0
  fi
  for tool in helm kubectl; do
    have "$tool" || { echo "e2e needs $tool on PATH"; exit 1; }
  done
}

load_image() {
  case "$CREATED" in
    kind) kind load docker-image "$1" --name "$CLUSTER" ;;
    k3d) k3d image import "$1" -c "$CLUSTER" ;;
    *) docker push "$1" ;;
  esac
}

build_images() {
  if ! docker_up; then
    echo "no Docker engine: using the published images"
    return
  fi
  if [[ -z "$CREATED" && -z "${E2E_REGISTRY:-}" ]]; then
    echo "existing cluster: set E2E_REGISTRY to a registry it pulls from"; exit 1
  fi
  say "building the runtime and operator images"
  docker build -f docker/runtime.Dockerfile -t "$REGISTRY/runtime:$TAG" .
  docker build -f docker/operator.Dockerfile -t "$REGISTRY/operator:$TAG" .
  load_image "$REGISTRY/runtime:$TAG"
  load_image "$REGISTRY/operator:$TAG"
}

install_kuberay() {
  say "installing KubeRay $KUBERAY_VERSION (a prerequisite of the chart)"
  helm repo add kuberay https://ray-project.github.io/kuberay-helm/ >/dev/null 2>&1 || true
  helm repo update kuberay >/dev/null
  helm upgrade --install kuberay-operator kuberay/kuberay-operator --version "$KUBERAY_VERSION" \
    --namespace kuberay-system --create-namespace --wait --timeout 10m
}

install_chart() {
  say "installing lima-run into $NS"
  # A fixed-size pool (minWorkers = maxWorkers): no autoscaler sidecar on a small cluster.
  helm upgrade --install "$RELEASE" helm/lima-run --namespace "$NS" --create-namespace \
    --wait --timeout 10m \
    --set operator.image.repository="$REGISTRY/operator" --set operator.image.tag="$TAG" \
    --set ray.image.repository="$REGISTRY/runtime" --set ray.image.tag="$TAG" \
    --set ray.headCpu=500m --set ray.headMemory=1Gi \
    --set pools.cpu.minWorkers=1 --set pools.cpu.maxWorkers=1 \
    --set pools.cpu.cpusPerWorker=1 --set pools.cpu.memoryPerWorker=3Gi \
    --set minio.persistence.size=5Gi
  kubectl -n "$NS" wait --for=condition=complete job \
    -l app.kubernetes.io/component=minio-bucket --timeout=5m
}

seed_data() {
  say "pushing the demo data into the chart's MinIO"
  local secret="$RELEASE-lima-run-s3"
  kubectl -n "$NS" port-forward "svc/$RELEASE-lima-run-minio" 19000:9000 >/dev/null 2>&1 &
  FORWARD=$!
  sleep 3
  LIMA_S3_ACCESS_KEY="$(kubectl -n "$NS" get secret "$secret" -o jsonpath='{.data.accessKey}' | base64 -d)"
  LIMA_S3_SECRET_KEY="$(kubectl -n "$NS" get secret "$secret" -o jsonpath='{.data.secretKey}' | base64 -d)"
  export LIMA_S3_ACCESS_KEY LIMA_S3_SECRET_KEY
  export LIMA_S3_ENDPOINT=http://127.0.0.1:19000
  "$LIMA" data push examples/data s3://lima/demo/data
}

apply_experiment() {
  say "applying examples/experiment-cluster.yaml (one worker per stage, to fit the pool above)"
  .venv/bin/python - <<'PY' | kubectl -n "$NS" apply -f -
import sys
import yaml

document = yaml.safe_load(open("examples/experiment-cluster.yaml"))
for stage in document["spec"]["resources"].values():
    stage.update(workers=1, cpus=1, memory="3Gi")
yaml.safe_dump(document, sys.stdout)
PY
}

wait_for_success() {
  say "waiting up to ${TIMEOUT}s for Experiment demo to succeed"
  local deadline=$((SECONDS + TIMEOUT)) phase stage
  while (( SECONDS < deadline )); do
    phase="$(kubectl -n "$NS" get exp demo -o jsonpath='{.status.phase}' 2>/dev/null || true)"
    kubectl -n "$NS" get exp demo --no-headers -o wide 2>/dev/null || true
    case "$phase" in
      Succeeded) say "e2e: Experiment demo Succeeded"; return 0 ;;
      Failed|Invalid)
        kubectl -n "$NS" describe exp demo
        stage="$(kubectl -n "$NS" get exp demo -o jsonpath='{.status.currentStage}')"
        if [[ -n "$stage" ]]; then "$LIMA" logs demo "$stage" || true; fi
        say "e2e: Experiment demo $phase"
        return 1 ;;
    esac
    sleep 20
  done
  kubectl -n "$NS" describe exp demo
  say "e2e: timed out"
  return 1
}

pick_cluster
build_images
install_kuberay
install_chart
seed_data
apply_experiment
wait_for_success
