#!/usr/bin/env bash
# Build one local control-plane tool from Go modules into a cache outside the
# repository and print the path of the binary.
#
#   tools/localcluster/build.sh kube|etcd|helm|containerd|runc|pause
#
# The binary lands in $AML_CACHE_DIR/bin/<tool>-<version>-<key>/<tool>, where
# <key> hashes the wrapper module (go.mod, go.sum, *.go) and the tool's build recipe, so a
# changed pin builds anew and an unchanged one returns at once. Go's module and build
# caches live under the same cache root so a clean clone reuses them too.
set -euo pipefail

tool=${1:?usage: build.sh kube|etcd|helm|containerd|runc|pause}
cgo=0
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${AML_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/aml-identity-operator}

case "$tool" in
  kube)
    # Pinned in kube/go.mod; the staging modules are replaced with v0.<minor>.<patch>.
    version=$(sed -n 's/^[[:space:]]*k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$here/kube/go.mod" | head -1)
    pkg=.
    # What `make release` would stamp; without it the server reports v0.0.0-master.
    minor=${version#v1.}; minor=${minor%%.*}
    ldflags="-s -w"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=$minor"
      ldflags+=" -X $p.gitTreeState=clean -X $p.gitCommit=go-module-$version"
    done
    ;;
  etcd)
    version=$(sed -n 's/^require go.etcd.io\/etcd\/server\/v3 \(v[0-9.]*\)$/\1/p' "$here/etcd/go.mod" | head -1)
    pkg=.
    ldflags='-s -w'
    ;;
  helm)
    version=$(sed -n 's/^[[:space:]]*helm.sh\/helm\/v3 \(v[0-9.]*\).*$/\1/p' "$here/helm/go.mod" | head -1)
    pkg=helm.sh/helm/v3/cmd/helm
    # Helm v3 otherwise assumes Kubernetes v1.20 in `helm template` and lint;
    # tell it the control plane's minor (kube/go.mod is the source of truth).
    kminor=$(sed -n 's/^[[:space:]]*k8s.io\/kubernetes v1\.\([0-9]*\)\..*$/\1/p' "$here/kube/go.mod" | head -1)
    ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
    for p in pkg/chartutil pkg/lint/rules; do
      ldflags+=" -X helm.sh/helm/v3/$p.k8sVersionMajor=1 -X helm.sh/helm/v3/$p.k8sVersionMinor=$kminor"
    done
    ;;
  containerd)
    # The node's container runtime (make cluster-up NODES=1): the daemon, its runc shim
    # (which the daemon finds next to itself on PATH) and ctr (image import), built
    # into one folder. No cgo: the btrfs, zfs and devmapper snapshotters are left out.
    version=$(sed -n 's/^[[:space:]]*github.com\/containerd\/containerd\/v2 \(v[0-9.]*\).*$/\1/p' "$here/containerd/go.mod" | head -1)
    pkg="github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 github.com/containerd/containerd/v2/cmd/ctr"
    ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=$version"
    tags=no_btrfs,no_zfs,no_devmapper
    ;;
  runc)
    # The node's OCI runtime. Debian 12's runc (1.1.5) and crun (1.8.1) predate the
    # runtime-spec containerd 2.4 writes and fail to start a container. runc needs cgo
    # (its nsenter is C) and libseccomp (apt-get install libseccomp-dev).
    version=$(sed -n 's/^[[:space:]]*github.com\/opencontainers\/runc \(v[0-9.]*\).*$/\1/p' "$here/runc/go.mod" | head -1)
    pkg=github.com/opencontainers/runc
    ldflags="-s -w -X main.version=${version#v}"
    tags=seccomp
    cgo=1
    ;;
  pause)
    # The Pod sandbox's pause process, from the C source in the pinned k8s.io/kubernetes
    # module (how its own image is built): containerd needs a sandbox image, and no
    # registry can be pulled from here.
    version=$(sed -n 's/^[[:space:]]*k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$here/kube/go.mod" | head -1)
    ;;
  *) echo "build.sh: unknown tool '$tool' (want kube, etcd, helm, containerd, runc or pause)" >&2; exit 2 ;;
esac
[ -n "$version" ] || { echo "build.sh: cannot read the $tool version from $here/$tool/go.mod" >&2; exit 1; }

# The key covers the wrapper module and how it is built (package, flags, tags, cgo), not
# the rest of this script: changing how one tool builds does not rebuild the others.
shopt -s nullglob
case "$tool" in
  pause) inputs=("$here/kube/go.mod"); recipe="gcc -Os -Wall -Werror -static $version" ;;
  *) inputs=("$here/$tool"/go.mod "$here/$tool"/go.sum "$here/$tool"/*.go)
     recipe="go build -trimpath $pkg ${tags:-} $cgo $ldflags" ;;
esac
key=$( (cat "${inputs[@]}"; echo "$recipe") | sha256sum | cut -c1-12)
out="$cache/bin/$tool-$version-$key/$tool"
if [ -x "$out" ]; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: Go is required to build $tool (https://go.dev/dl)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
export GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build" GOFLAGS="-buildvcs=false -mod=readonly" CGO_ENABLED=$cgo
export GOTOOLCHAIN=local
echo "build.sh: building $tool $version (first time only; cached in $(dirname "$out"))" >&2
tmp="$out.tmp.$$"
case "$tool" in
  containerd)
    mkdir -p "$tmp"
    # shellcheck disable=SC2086  # $pkg is a list of packages
    (cd "$here/$tool" && go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$tmp/" $pkg) >&2
    mv -f "$tmp"/* "$(dirname "$out")/"
    rmdir "$tmp"
    ;;
  pause)
    command -v gcc >/dev/null || { echo "build.sh: gcc is required to build pause" >&2; exit 1; }
    source=$(cd "$here/kube" && go mod download -json k8s.io/kubernetes | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    gcc -Os -Wall -Werror -static -DVERSION="$version" -o "$tmp" "$source/build/pause/linux/pause.c" >&2
    mv -f "$tmp" "$out"
    ;;
  *)
    (cd "$here/$tool" && go build -trimpath -tags "${tags:-}" -ldflags "$ldflags" -o "$tmp" "$pkg") >&2
    mv -f "$tmp" "$out"
    ;;
esac
# Older builds of this tool are dead weight (~130 MB for kube); keep only this one.
for old in "$cache/bin/$tool"-*; do
  [ "$old" = "$(dirname "$out")" ] || rm -rf "$old"
done
echo "$out"
