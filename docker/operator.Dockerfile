# The lima-run operator (kopf). It computes artifact keys and reads the artifact store, so it
# installs lima-run itself; it never runs stage code, so torch comes from the small CPU index.
#   docker build -f docker/operator.Dockerfile -t ghcr.io/lima-run/operator:0.1.0 .
FROM python:3.11-slim
ARG TORCH_VERSION=2.13.0
RUN groupadd --gid 1000 lima && useradd --uid 1000 --gid 1000 --create-home lima
WORKDIR /opt/lima-run
COPY pyproject.toml README.md ./
COPY lima ./lima
COPY jobs ./jobs
COPY operator ./operator
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir . \
 && python -c "import lima_operator.handlers"
ENV HOME=/tmp/home LIMA_WORK_DIR=/tmp/lima PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 1000:1000
EXPOSE 8080 9090
ENTRYPOINT ["kopf"]
CMD ["run", "--standalone", "--all-namespaces", "--liveness=http://0.0.0.0:8080/healthz", "-m", "lima_operator.handlers"]
