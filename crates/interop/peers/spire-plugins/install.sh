#!/usr/bin/env bash
# Builds the SPIRE test plugins (cmd/*/main.go: plugins written with github.com/spiffe/spire-plugin-sdk
# at the version SPIRE v1.13.3 requires, pinned in go.mod/go.sum) into
# <cache>/spire-plugins-<hash of our sources>/ unless that directory exists, then points
# <cache>/bin/spire-test-plugin-<name> at each. The external plugin tests load them through
# `plugin_cmd` into SPIRE v1.13.3 and into our server and agent.
set -euo pipefail
cache="$1"
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../lib.sh"
sources=(go.mod go.sum install.sh ../lib.sh)
while IFS= read -r f; do sources+=("$f"); done < <(cd "$here" && find cmd internal -name '*.go' | LC_ALL=C sort)
dest="$cache/spire-plugins-$(cd "$here" && peer_hash "${sources[@]}")"
build() {
    (cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -o "$1/" ./cmd/...)
}
peer_build_once "$dest" build
mkdir -p "$cache/bin"
for exe in "$dest"/*; do
    ln -sfn "$exe" "$cache/bin/spire-test-plugin-$(basename "$exe")"
done
echo "spire-plugins: $dest"
