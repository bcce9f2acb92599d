#!/usr/bin/env bash
# Builds the real SPIRE v1.13.3 OIDC Discovery Provider (support/oidc-discovery-provider) from the
# Go module proxy into <cache>/spire-oidc-1.13.3/bin unless that directory is already there, then
# points <cache>/bin/upstream-oidc-discovery-provider at it. As for the spire peer, the proxy refuses
# `go install ...@v1.13.3`, so the package is required as a tool of a scratch module.
set -euo pipefail
cache="$1"
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../lib.sh"
version=v1.13.3
dir="$cache/spire-oidc-${version#v}"
pkg=github.com/spiffe/spire/support/oidc-discovery-provider
build() {
    local out="$1"
    (
        peer_scratch_module "$dir" peers
        go get -tool "$pkg@$version"
        CGO_ENABLED=0 go build -trimpath -o "$out/" \
            -ldflags "-X github.com/spiffe/spire/pkg/common/version.gittag=${version#v}" "$pkg"
    )
}
mkdir -p "$dir"
peer_build_once "$dir/bin" build
mkdir -p "$cache/bin"
ln -sfn "$dir/bin/oidc-discovery-provider" "$cache/bin/upstream-oidc-discovery-provider"
echo "upstream-oidc-discovery-provider: $dir/bin"
