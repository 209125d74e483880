# aml-identity-operator: everything a fresh machine needs is installed from here.
#
#   make demo        the operator on the local world, end to end (DEMO_FLAGS=--keep to explore)
#   make test        lint, CRD check, unit tests and tests against a real control plane
#   make cluster-up  start etcd + kube-apiserver + kube-controller-manager on loopback
#                    (NODES=1: also kube-scheduler and a node: containerd + runc + kubelet)
#   make image       the operator's image, built offline (loaded into the node if one runs)
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
NODES ?= 0
# What a node and the offline image need from Debian: debootstrap and umoci (image),
# libseccomp-dev (runc's build). Installed by `make node-deps` when missing.
NODE_DEBS := debootstrap umoci libseccomp-dev

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
tools: ## build Kubernetes (apiserver, controller-manager, scheduler, kubelet), etcd and Helm from Go modules (cached)
	tools/localcluster/build.sh kube
	tools/localcluster/build.sh etcd
	tools/localcluster/build.sh helm

.PHONY: node-deps
node-deps: ## install the Debian packages a node and the image build need (root)
	@missing=$$(for p in $(NODE_DEBS); do \
	  [ "$$(dpkg-query -W -f='$${Status}' $$p 2>/dev/null)" = "install ok installed" ] || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
	  echo "installing $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

.PHONY: node-tools
node-tools: node-deps ## build containerd, runc and pause from Go modules and C (cached)
	tools/localcluster/build.sh containerd
	tools/localcluster/build.sh runc
	tools/localcluster/build.sh pause

.PHONY: image
image: venv node-deps ## build the operator's image offline (OCI archive; loaded into a running node)
	@archive=$$(tools/image/build.sh) && echo "$$archive" && \
	if ls "$(CLUSTER_DIR)"/node*/node.json >/dev/null 2>&1; then \
	  $(BIN)/python tools/localcluster/localcluster.py load-image --dir "$(CLUSTER_DIR)" "$$archive"; \
	fi

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
test: venv tools node-tools lint ## everything: lint, unit and real-control-plane tests
	$(BIN)/pytest $(PYTEST_FLAGS)

.PHONY: demo
demo: venv tools ## the operator on the local world: control plane, azlocal, examples/demo, access proven
	$(BIN)/python tools/demo/demo.py $(DEMO_FLAGS)

.PHONY: cluster-up
cluster-up: venv tools $(if $(filter-out 0,$(or $(NODES),0)),node-tools) ## start a local control plane in $(CLUSTER_DIR) (NODES=1: with a node)
	$(BIN)/python tools/localcluster/localcluster.py up --dir "$(CLUSTER_DIR)" --nodes $(or $(NODES),0)

.PHONY: cluster-down
cluster-down: venv ## stop the local control plane (and its nodes)
	$(BIN)/python tools/localcluster/localcluster.py down --dir "$(CLUSTER_DIR)"

.PHONY: clean
clean: ## remove .venv and the local cluster folder (keeps the cache)
	-$(BIN)/python tools/localcluster/localcluster.py down --dir "$(CLUSTER_DIR)"
	rm -rf $(VENV) "$(CLUSTER_DIR)" .mypy_cache .ruff_cache .pytest_cache
