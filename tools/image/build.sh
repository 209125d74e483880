#!/usr/bin/env bash
# Build the operator's image without a registry or a Docker engine, as an OCI archive
# (from Debian's packages and PyPI, the package registries this machine reaches).
#
#   tools/image/build.sh [OUT]      (make image; OUT defaults to the cache, path printed)
#
# The Dockerfile stays the definition for users with a registry; this builds the same
# thing here, from Debian's packages and the lock file, with the same install script:
#   1. a build root: Debian bookworm (minbase) with python3 and python3-venv, made with
#      debootstrap and cached by its package list;
#   2. /opt/venv: docker/install.sh run inside that root (chroot, in a private mount
#      namespace), so the venv is built by the interpreter the image runs;
#   3. the runtime root: only the files of the packages Python needs at run time (the
#      closure of python3.11-minimal and libpython3.11-stdlib, plus ca-certificates and
#      tzdata) and a passwd for uid 65532: no shell, no package manager;
#   4. two layers (runtime root, then /opt/venv) and the config of the Dockerfile's final
#      stage (user 65532, entrypoint aml-identity), written with umoci.
# Needs root, debootstrap and umoci (apt-get install debootstrap umoci).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${AML_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/aml-identity-operator}
uv=${UV:-$cache/tools/uv-0.13.8/bin/uv}
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
repository=ghcr.io/aml-identity-operator/aml-identity-operator
version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$repo/charts/aml-identity-operator/Chart.yaml")
build_packages=python3,python3-venv,ca-certificates
runtime_roots="python3.11-minimal libpython3.11-stdlib ca-certificates tzdata netbase"

say() { echo "image: $*" >&2; }
for tool in debootstrap umoci; do
  command -v "$tool" >/dev/null || { say "$tool is required (apt-get install $tool)"; exit 1; }
done
[ "$(id -u)" = 0 ] || { say "building the root filesystem needs root (debootstrap, chroot)"; exit 1; }
[ -x "$uv" ] || { say "uv not found at $uv: run make venv first"; exit 1; }

# 1. The build root, cached by suite and packages (and this script's step 1).
base_key=$(printf '%s\n' "$suite" "$build_packages" "$mirror" | sha256sum | cut -c1-12)
root=$cache/image/build-root-$suite-$base_key
if [ ! -e "$root/.complete" ]; then
  say "debootstrap $suite into $root (first time only)"
  rm -rf "$root"
  debootstrap --variant=minbase --include="$build_packages" "$suite" "$root" "$mirror" >&2
  touch "$root/.complete"
fi

# The cache key: what the Dockerfile copies (names and contents; no byte code) and this
# script.
sources=(pyproject.toml uv.lock README.md LICENSE docker/install.sh operator emulator)
key=$( (cd "$repo" && find "${sources[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 \
  | LC_ALL=C sort -z | xargs -0 sha256sum; sha256sum < "$here/build.sh") | sha256sum | cut -c1-12)
tag=${IMAGE_TAG:-$version}
cached=$cache/image/aml-identity-operator-$tag-$key.oci.tar
out=${1:-$cached}
mkdir -p "$(dirname "$out")" "$cache/image"
if [ -s "$cached" ]; then
  [ "$out" = "$cached" ] || cp "$cached" "$out"
  echo "$out"
  exit 0
fi
work=$(mktemp -d "$cache/image/work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# 2. /opt/venv, built inside the build root. The source and uv are bind-mounted read
# only; the host's resolver, pip settings and CA bundle reach PyPI from inside.
say "installing the operator from uv.lock into /opt/venv (inside the build root)"
stage=$work/stage
mkdir -p "$stage/src" "$stage/venv"
# What the Dockerfile copies, without byte code (as .dockerignore).
(cd "$repo" && tar -c --exclude=__pycache__ --exclude='*.pyc' "${sources[@]}") | tar -x -C "$stage/src"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
certs=$(python3 -c 'import ssl; print(ssl.get_default_verify_paths().cafile or "")')
certs=${PIP_CERT:-${certs:-/etc/ssl/certs/ca-certificates.crt}}
unshare -m --propagation private bash -euo pipefail -c '
  root=$1 stage=$2 uv=$3 certs=$4
  mkdir -p "$root/src" "$root/opt/venv" "$root/uv" "$root/host-certs"
  mount --bind "$stage/src" "$root/src"
  mount --bind "$stage/venv" "$root/opt/venv"
  mount --bind "$(dirname "$uv")" "$root/uv"
  touch "$root/host-certs/ca.crt" && mount --bind "$certs" "$root/host-certs/ca.crt"
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/tmp UV=/uv/uv \
    UV_CACHE_DIR=/tmp/uv-cache UV_PYTHON_DOWNLOADS=never \
    PIP_CERT=/host-certs/ca.crt SSL_CERT_FILE=/host-certs/ca.crt \
    PIP_DEFAULT_TIMEOUT=180 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    /src/docker/install.sh /src /opt/venv
' _ "$root" "$stage" "$uv" "$certs" >&2

# 3. The runtime root: the files of the runtime packages' dependency closure.
say "assembling the runtime root (no shell)"
rootfs=$work/rootfs
mkdir -p "$rootfs"
# Debian links /bin, /lib, /lib64 and /sbin into /usr ("merged /usr"): the links first,
# so that files listed under /lib land in /usr/lib.
for link in bin lib lib64 sbin; do
  if [ -L "$root/$link" ]; then
    mkdir -p "$rootfs/usr/$link" && cp -a "$root/$link" "$rootfs/$link"
  fi
done
packages=$(python3 - "$root/var/lib/dpkg/status" $runtime_roots <<'PY'
import re, sys
status, roots = sys.argv[1], sys.argv[2:]
depends: dict[str, list[str]] = {}
provides: dict[str, str] = {}
for stanza in open(status).read().split("\n\n"):
    fields = dict(re.findall(r"^([A-Za-z-]+): ?(.*)$", stanza, re.M))
    if "Package" not in fields or "installed" not in fields.get("Status", ""):
        continue
    name = fields["Package"]
    alternatives = [
        [a.split()[0].split(":")[0] for a in group.split("|")]
        for key in ("Pre-Depends", "Depends")
        for group in fields.get(key, "").split(",") if group.strip()
    ]
    depends[name] = alternatives
    for p in fields.get("Provides", "").split(","):
        if p.strip():
            provides[p.split()[0]] = name
closure, todo = set(), list(roots)
while todo:
    name = todo.pop()
    name = name if name in depends else provides.get(name, "")
    if not name or name in closure:
        continue
    closure.add(name)
    for alts in depends[name]:
        todo.append(next((a for a in alts if a in depends or a in provides), alts[0]))
print("\n".join(sorted(closure)))
PY
)
for shell in dash bash coreutils; do
  if grep -qx "$shell" <<<"$packages"; then say "runtime closure pulls in $shell"; exit 1; fi
done
while read -r package; do
  list=$root/var/lib/dpkg/info/$package.list
  [ -e "$list" ] || list=$(ls "$root/var/lib/dpkg/info/$package":*.list)  # Multi-Arch: same
  while read -r path; do
    if [ -e "$rootfs$path" ] && [ -d "$root$path" ]; then
      continue
    elif [ -f "$root$path" ] || [ -L "$root$path" ]; then
      mkdir -p "$rootfs$(dirname "$path")"
      cp -a "$root$path" "$rootfs$path"
    elif [ -d "$root$path" ]; then
      mkdir -p "$rootfs$path"
    fi
  done <"$list"
done <<<"$packages"
cp -a "$root/etc/ssl" "$rootfs/etc/"   # the CA bundle update-ca-certificates made
# The venv's python links to /usr/bin/python3, which is python3-minimal's (that package
# needs dpkg): the link alone.
ln -sf python3.11 "$rootfs/usr/bin/python3"
mkdir -p "$rootfs/tmp" "$rootfs/etc"
chmod 1777 "$rootfs/tmp"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
echo "$packages" | tr '\n' ' ' | sed 's/ $/\n/' >"$work/packages.txt"

# 4. The OCI image: the runtime root, then the venv, then the config.
say "writing the OCI image (umoci)"
layout=$work/oci
umoci init --layout "$layout"
umoci new --image "$layout:$tag"
umoci unpack --rootless --image "$layout:$tag" "$work/bundle" >/dev/null
rm -rf "$work/bundle/rootfs" && cp -a "$rootfs" "$work/bundle/rootfs"
# --refresh-bundle: the next repack is then a layer of its own (the venv's), not all again.
umoci repack --refresh-bundle --image "$layout:$tag" \
  --history.created_by "Debian $suite runtime: $(cat "$work/packages.txt")" "$work/bundle"
mkdir -p "$work/bundle/rootfs/opt/venv" && cp -a "$stage/venv/." "$work/bundle/rootfs/opt/venv/"
umoci repack --image "$layout:$tag" --history.created_by "docker/install.sh /src /opt/venv" "$work/bundle"
umoci config --image "$layout:$tag" \
  --config.user 65532:65532 \
  --config.entrypoint aml-identity \
  --config.cmd run --config.cmd --log-format --config.cmd json \
  --config.env PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.env PYTHONDONTWRITEBYTECODE=1 --config.env PYTHONUNBUFFERED=1 \
  --config.label org.opencontainers.image.source=https://github.com/aml-identity-operator/aml-identity-operator \
  --history.created_by "USER 65532:65532, ENTRYPOINT aml-identity"
umoci gc --layout "$layout"
# Named in full, so that `ctr images import` calls it by the chart's image name.
PYTHONPATH=$repo/tools/localcluster python3 -c 'import sys, pathlib, node
node.name_image(pathlib.Path(sys.argv[1]), sys.argv[2])' "$layout/index.json" "$repository:$tag"
tar -C "$layout" -cf "$cached.tmp" .
mv "$cached.tmp" "$cached"
# Older builds are dead weight; keep this one.
for old in "$cache/image/aml-identity-operator-"*.oci.tar; do
  [ "$old" = "$cached" ] || rm -f "$old"
done
[ "$out" = "$cached" ] || cp "$cached" "$out"
say "$repository:$tag: $(du -m "$out" | cut -f1) MiB (archive of compressed layers)"
echo "$out"
