#!/usr/bin/env bash
# Builds go-spiffe-workload (main.go, on go-spiffe v2.9.0 as pinned in go.mod/go.sum) into
# <cache>/go-spiffe-v2.9.0-<hash of our sources>/ unless that directory exists, then points
# <cache>/bin/go-spiffe-workload at it.
set -euo pipefail
cache="$1"
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../lib.sh"
version=v2.9.0
dest="$cache/go-spiffe-$version-$(cd "$here" && peer_hash go.mod go.sum main.go install.sh ../lib.sh)"
build() {
    (cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -o "$1/go-spiffe-workload" .)
}
peer_build_once "$dest" build
mkdir -p "$cache/bin"
ln -sfn "$dest/go-spiffe-workload" "$cache/bin/go-spiffe-workload"
echo "go-spiffe-workload: $dest"
