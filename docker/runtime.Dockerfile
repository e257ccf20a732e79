# Runtime image of every RayJob: Ray + lima-run with its `ml` extra (the stages' libraries).
# Each RayJob runs `lima stage NAME --experiment URI` (lima/k8s/rayjob.py).
#   CPU:  docker build -f docker/runtime.Dockerfile -t ghcr.io/lima-run/runtime:0.1.0 .
#   CUDA: docker build -f docker/runtime.Dockerfile --build-arg VARIANT=cuda \
#           -t ghcr.io/lima-run/runtime:0.1.0-cuda .
ARG RAY_VERSION=2.60.0
ARG VARIANT=cpu
# rayproject/ray tags: <version>-py311-cpu and <version>-py311-cu128 (CUDA 12.8 + cuDNN).
FROM rayproject/ray:${RAY_VERSION}-py311-cpu AS base-cpu
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
FROM rayproject/ray:${RAY_VERSION}-py311-cu128 AS base-cuda
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128

FROM base-${VARIANT}
ARG TORCH_VERSION=2.13.0
USER root
WORKDIR /opt/lima-run
COPY pyproject.toml README.md ./
COPY lima ./lima
COPY operator ./operator
# torch first from the variant's index, so the project's range never pulls another build.
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}" \
 && pip install --no-cache-dir ".[ml]" \
 && lima --help >/dev/null && python -c "import lima.stages.train, deepspeed, ray"
# The RayJob pod security context runs as uid/gid 1000 (the ray user of the base image) with a
# read-only root filesystem; everything writable is under /tmp (an emptyDir).
ENV HOME=/tmp/home HF_HOME=/tmp/hf LIMA_WORK_DIR=/tmp/lima PYTHONDONTWRITEBYTECODE=1
USER 1000:1000
WORKDIR /opt/lima-run
