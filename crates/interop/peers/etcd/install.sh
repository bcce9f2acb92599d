#!/usr/bin/env bash
# Builds etcd v3.6.13 (Kubernetes 1.31+ needs 3.5.13 or newer; Debian 12 ships 3.4) from the Go module
# proxy into <cache>/etcd-3.6.13/bin unless that directory is already there, then points
# <cache>/bin/etcd at it. The binary's main package is go.etcd.io/etcd/server/v3, which requires
# published versions of its siblings, so a scratch module of its own builds it.
set -euo pipefail
cache="$1"
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../lib.sh"
version=v3.6.13
dir="$cache/etcd-${version#v}"
build() {
    local out="$1"
    (
        peer_scratch_module "$dir" local/etcd
        go get -tool "go.etcd.io/etcd/server/v3@$version"
        CGO_ENABLED=0 go build -trimpath -o "$out/etcd" go.etcd.io/etcd/server/v3
    )
}
mkdir -p "$dir"
peer_build_once "$dir/bin" build
mkdir -p "$cache/bin"
ln -sfn "$dir/bin/etcd" "$cache/bin/etcd"
echo "etcd: $dir/bin"
