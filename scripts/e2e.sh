#!/usr/bin/env bash
# The real-cluster path, end to end: KubeRay + this chart + the demo Experiment -> Succeeded.
#
# Uses the current kubectl context when it reaches a cluster; otherwise creates a kind (or k3d)
# cluster named lima-e2e. Prints "no cluster" and exits 0 where none of that is possible.
# Knobs: E2E_TIMEOUT (seconds, default 3600), E2E_NAMESPACE (lima), KUBERAY_VERSION (1.4.2),
#        E2E_KEEP=1 keeps a cluster this script created.
set -euo pipefail

NS="${E2E_NAMESPACE:-lima}"
TIMEOUT="${E2E_TIMEOUT:-3600}"
KUBERAY_VERSION="${KUBERAY_VERSION:-1.4.2}"
CLUSTER=lima-e2e
TAG=e2e
CREATED=""
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1; }

cleanup() {
  if [[ -n "$CREATED" && -z "${E2E_KEEP:-}" ]]; then
    echo "deleting the $CREATED cluster $CLUSTER"
    if [[ "$CREATED" == kind ]]; then kind delete cluster --name "$CLUSTER"; else k3d cluster delete "$CLUSTER"; fi
  fi
}
trap cleanup EXIT

if have kubectl && kubectl version --request-timeout=5s >/dev/null 2>&1; then
  echo "using kubectl context $(kubectl config current-context)"
elif have docker && docker info >/dev/null 2>&1 && have kind; then
  kind create cluster --name "$CLUSTER" --wait 120s && CREATED=kind
elif have docker && docker info >/dev/null 2>&1 && have k3d; then
  k3d cluster create "$CLUSTER" --wait && CREATED=k3d
else
  echo "no cluster: no reachable kubectl context, and no kind/k3d with a Docker engine; skipping e2e"
  exit 0
fi
for tool in helm kubectl; do
  have "$tool" || { echo "e2e needs $tool on PATH"; exit 1; }
done

load_image() {
  if [[ "$CREATED" == kind ]]; then kind load docker-image "$1" --name "$CLUSTER"
  elif [[ "$CREATED" == k3d ]]; then k3d image import "$1" -c "$CLUSTER"
  else echo "existing cluster: push $1 to a registry it can pull from (set E2E_REGISTRY)"; fi
}

REGISTRY="${E2E_REGISTRY:-lima-run}"
if have docker && docker info >/dev/null 2>&1; then
  docker build -f docker/runtime.Dockerfile -t "$REGISTRY/runtime:$TAG" .
  docker build -f docker/operator.Dockerfile -t "$REGISTRY/operator:$TAG" .
  if [[ -n "${E2E_REGISTRY:-}" && -z "$CREATED" ]]; then
    docker push "$REGISTRY/runtime:$TAG"; docker push "$REGISTRY/operator:$TAG"
  else
    load_image "$REGISTRY/runtime:$TAG"; load_image "$REGISTRY/operator:$TAG"
  fi
fi

echo "installing KubeRay $KUBERAY_VERSION"
helm repo add kuberay https://ray-project.github.io/kuberay-helm/ >/dev/null 2>&1 || true
helm repo update kuberay >/dev/null
helm upgrade --install kuberay-operator kuberay/kuberay-operator --version "$KUBERAY_VERSION" \
  --namespace kuberay-system --create-namespace --wait --timeout 10m

echo "installing lima-run into $NS"
helm upgrade --install lima helm/lima-run --namespace "$NS" --create-namespace --wait --timeout 10m \
  --set operator.image.repository="$REGISTRY/operator" --set operator.image.tag="$TAG" \
  --set ray.image.repository="$REGISTRY/runtime" --set ray.image.tag="$TAG" \
  --set minio.persistence.size=5Gi

# The demo reads examples/data through relative paths: publish them into MinIO and point the
# Experiment at s3:// copies (the same spec otherwise).
kubectl -n "$NS" wait --for=condition=complete job -l app.kubernetes.io/component=minio-bucket --timeout=5m || true
kubectl -n "$NS" port-forward svc/lima-lima-run-minio 19000:9000 >/dev/null 2>&1 &
FORWARD=$!
trap 'kill $FORWARD 2>/dev/null || true; cleanup' EXIT
sleep 3
SECRET=lima-lima-run-s3
export LIMA_S3_ENDPOINT=127.0.0.1:19000 LIMA_S3_SECURE=false LIMA_BUCKET=lima
LIMA_S3_ACCESS_KEY="$(kubectl -n "$NS" get secret "$SECRET" -o jsonpath='{.data.accessKey}' | base64 -d)"
LIMA_S3_SECRET_KEY="$(kubectl -n "$NS" get secret "$SECRET" -o jsonpath='{.data.secretKey}' | base64 -d)"
export LIMA_S3_ACCESS_KEY LIMA_S3_SECRET_KEY
.venv/bin/python - <<'PY'
from pathlib import Path
from lima.settings import Settings
from lima.store import s3_backend
backend = s3_backend(Settings(), "lima")
for path in Path("examples/data").rglob("*"):
    if path.is_file():
        backend.put_file(f"e2e/{path}", path)
PY
# The demo's paths are relative to examples/ (the Experiment file's folder).
sed -e 's#uri: "data/#uri: "s3://lima/e2e/examples/data/#g' examples/experiment.yaml | kubectl -n "$NS" apply -f -

echo "waiting up to ${TIMEOUT}s for Experiment demo to succeed"
deadline=$((SECONDS + TIMEOUT))
while (( SECONDS < deadline )); do
  phase="$(kubectl -n "$NS" get exp demo -o jsonpath='{.status.phase}' 2>/dev/null || true)"
  kubectl -n "$NS" get exp demo --no-headers 2>/dev/null || true
  case "$phase" in
    Succeeded) echo "e2e: Experiment demo Succeeded"; exit 0 ;;
    Failed|Invalid) kubectl -n "$NS" describe exp demo; echo "e2e: Experiment demo $phase"; exit 1 ;;
  esac
  sleep 20
done
kubectl -n "$NS" describe exp demo
echo "e2e: timed out"
exit 1
