# The lima-run operator (kopf). It computes artifact keys from the stage graph (lima.dag) and reads
# the artifact store; it never runs stage code, so it installs only lima-run's light core: no
# torch, Ray, DeepSpeed or transformers (docs/architecture.md gives the installed size).
#   docker build -f docker/operator.Dockerfile -t ghcr.io/lima-run/operator:0.1.0 .
FROM python:3.11-slim
RUN groupadd --gid 1000 lima && useradd --uid 1000 --gid 1000 --create-home lima
WORKDIR /opt/lima-run
COPY pyproject.toml README.md ./
COPY lima ./lima
COPY operator ./operator
RUN pip install --no-cache-dir . \
 && python -c "import sys, lima.dag, lima_operator.handlers; assert 'torch' not in sys.modules"
ENV HOME=/tmp/home LIMA_WORK_DIR=/tmp/lima PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 1000:1000
EXPOSE 8080 9090
ENTRYPOINT ["kopf"]
CMD ["run", "--standalone", "--all-namespaces", "--liveness=http://0.0.0.0:8080/healthz", "-m", "lima_operator.handlers"]
