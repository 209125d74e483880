# aml-identity-operator: everything a fresh machine needs is installed from here.
#
#   make demo        the operator on the local world, end to end (DEMO_FLAGS=--keep to explore)
#   make test        lint, CRD check, unit tests and tests against a real control plane
#   make cluster-up  start etcd + kube-apiserver + kube-controller-manager on loopback
#
# Heavy builds and tools are cached outside the repository, keyed by version:
# $(CACHE)/bin (control-plane binaries, Helm), $(CACHE)/go (Go module and build
# caches), $(CACHE)/tools (uv). The Python environment is .venv, from uv.lock.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CACHE ?= $(or $(AML_CACHE_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/aml-identity-operator)
export AML_CACHE_DIR := $(CACHE)
UV_VERSION := 0.13.8
UV := $(CACHE)/tools/uv-$(UV_VERSION)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
PYTEST_FLAGS ?=
CLUSTER_DIR ?= .localcluster

export UV_PYTHON_DOWNLOADS := never
export UV_CACHE_DIR ?= $(CACHE)/uv

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv $(CACHE)/tools/uv-$(UV_VERSION)
	$(CACHE)/tools/uv-$(UV_VERSION)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --python python3 --compile-bytecode
	@touch $@

.PHONY: venv
venv: $(VENV)/.synced ## create .venv from uv.lock (Python deps, kubectl)

.PHONY: lock
lock: | $(UV) ## re-resolve uv.lock after changing pyproject.toml
	$(UV) lock

.PHONY: tools
tools: ## build kube-apiserver/controller-manager, etcd and Helm from Go modules (cached)
	tools/localcluster/build.sh kube
	tools/localcluster/build.sh etcd
	tools/localcluster/build.sh helm

.PHONY: crds
crds: venv ## regenerate crds/ (and the chart's copy) from the pydantic models
	$(BIN)/python -m aml_identity.api.crd crds/
	$(BIN)/python -m aml_identity.api.crd charts/aml-identity-operator/files/crds/

.PHONY: argocd
argocd: venv ## regenerate the Argo CD health checks in argocd/
	$(BIN)/python -m aml_identity.api.argocd argocd/resource_customizations
	$(BIN)/python -m aml_identity.api.argocd charts/aml-identity-operator/files/argocd --health-only

.PHONY: lint
lint: venv ## ruff, mypy (strict) and import-linter layer contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

.PHONY: unit
unit: venv ## unit tests only (no control plane)
	$(BIN)/pytest tests/unit $(PYTEST_FLAGS)

.PHONY: test
test: venv tools lint ## everything: lint, unit and real-control-plane tests
	$(BIN)/pytest $(PYTEST_FLAGS)

.PHONY: demo
demo: venv tools ## the operator on the local world: control plane, azlocal, examples/demo, access proven
	$(BIN)/python tools/demo/demo.py $(DEMO_FLAGS)

.PHONY: cluster-up
cluster-up: venv tools ## start a local control plane in $(CLUSTER_DIR) (prints KUBECONFIG)
	$(BIN)/python tools/localcluster/localcluster.py up --dir "$(CLUSTER_DIR)"

.PHONY: cluster-down
cluster-down: venv ## stop the local control plane
	$(BIN)/python tools/localcluster/localcluster.py down --dir "$(CLUSTER_DIR)"

.PHONY: clean
clean: ## remove .venv and the local cluster folder (keeps the cache)
	-$(BIN)/python tools/localcluster/localcluster.py down --dir "$(CLUSTER_DIR)"
	rm -rf $(VENV) "$(CLUSTER_DIR)" .mypy_cache .ruff_cache .pytest_cache
