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
# Byte-code caches are rebuilt at run time into /tmp if needed; they only add size.
find "$venv" -name __pycache__ -type d -prune -exec rm -rf {} +
