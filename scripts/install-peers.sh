#!/usr/bin/env bash
# Builds the independent peers the interoperability tests run against (the real SPIRE, go-spiffe,
# Python grpcio and grpc-java clients; etcd, kube-apiserver and kube-controller-manager for the
# Kubernetes tests; the spire-plugin-sdk test plugins of spire-plugins) from their registries, once per machine, into a cache outside
# the clone: ${SPIRE_RS_PEERS_DIR:-~/.cache/spire-rs-peers}. Each peer lives under
# crates/interop/peers/<peer>/ with an install.sh that takes the cache directory, builds into a
# directory keyed by version and by a hash of our sources (skipping the build when it exists), and
# (re)writes its executables into <cache>/bin. Tests find them there (spire_testkit::peers).
#
# Usage: scripts/install-peers.sh [peer...]   (default: every peer)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${SPIRE_RS_PEERS_DIR:-$HOME/.cache/spire-rs-peers}"
mkdir -p "$cache/bin"

peers=("$@")
if [ ${#peers[@]} -eq 0 ]; then
    for d in "$root"/crates/interop/peers/*/; do peers+=("$(basename "$d")"); done
fi
for p in "${peers[@]}"; do
    script="$root/crates/interop/peers/$p/install.sh"
    [ -x "$script" ] || { echo "no installer for peer $p ($script)" >&2; exit 1; }
    echo "==> peer $p"
    start=$(date +%s)
    "$script" "$cache"
    echo "    $p ready in $(( $(date +%s) - start )) s"
done
ls -l "$cache/bin"
