#!/usr/bin/env bash
# Install the operator and its locked runtime dependencies (no dev tools) into a fresh
# virtual environment. Used by the Dockerfile's build stage, and by the test that
# proves the image's install and entry steps without a Docker engine.
#
#   docker/install.sh SOURCE_DIR VENV_DIR
#
# Needs python3 and uv (UV=path/to/uv, default: uv on PATH).
set -euo pipefail
src=$(cd "${1:?source dir}" && pwd)
venv=${2:?virtual environment dir}
uv=${UV:-uv}

requirements=$(mktemp)
trap 'rm -f "$requirements"' EXIT
# Exactly the versions and hashes of uv.lock, runtime dependencies only.
(cd "$src" && "$uv" export --frozen --no-dev --no-emit-project --no-header --quiet -o "$requirements")
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check --require-hashes -r "$requirements"
"$venv/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check --no-deps "$src"
# Byte code for exactly what the operator imports, no more: the image runs with a
# read-only root filesystem and PYTHONDONTWRITEBYTECODE, so without it every start would
# compile ~1,000 modules again (import 3 s instead of 1.4 s). pip's byte code for the
# rest (every API version of every SDK) only adds size.
find "$venv" -name __pycache__ -type d -prune -exec rm -rf {} +
env -u PYTHONDONTWRITEBYTECODE "$venv/bin/python" -c \
  "import aml_identity.cli, aml_identity.handlers.runner, aml_identity.azure.graph, aml_identity.azure.vault"
