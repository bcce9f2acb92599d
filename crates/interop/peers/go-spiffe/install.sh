#!/usr/bin/env bash
# Builds go-spiffe-workload (main.go, on go-spiffe v2.9.0 as pinned in go.mod/go.sum) into
# <cache>/go-spiffe-v2.9.0-<hash of our sources>/ unless that directory exists, then points
# <cache>/bin/go-spiffe-workload at it.
set -euo pipefail
cache="$1"
here="$(cd "$(dirname "$0")" && pwd)"
version=v2.9.0
hash="$(cd "$here" && cat go.mod go.sum main.go install.sh | sha256sum | cut -c1-12)"
dest="$cache/go-spiffe-$version-$hash"
mkdir -p "$cache/bin"
if [ ! -d "$dest" ]; then
    # Build beside the final directory and rename, so an interrupted build never looks complete.
    tmp="$(mktemp -d "$cache/.go-spiffe-build.XXXXXX")"
    chmod 755 "$tmp"
    trap 'rm -rf "$tmp"' EXIT
    (cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -o "$tmp/go-spiffe-workload" .)
    mv "$tmp" "$dest"
    trap - EXIT
fi
ln -sfn "$dest/go-spiffe-workload" "$cache/bin/go-spiffe-workload"
echo "go-spiffe-workload: $dest"
