#!/usr/bin/env bash
# Builds the real SPIRE v1.13.3 (spire-server and spire-agent) from the Go module proxy into
# <cache>/spire-1.13.3/bin unless that directory is already there, then points
# <cache>/bin/upstream-spire-server and upstream-spire-agent at them.
#
# The proxy refuses `go install ...@v1.13.3` for SPIRE's commands, so they are required as tools of a
# scratch module and built from it. CGO is needed: SPIRE's SQLite driver is mattn/go-sqlite3.
set -euo pipefail
cache="$1"
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../lib.sh"
version=v1.13.3
dir="$cache/spire-${version#v}"
build() {
    local out="$1"
    (
        peer_scratch_module "$dir" peers
        go get -tool "github.com/spiffe/spire/cmd/spire-server@$version" "github.com/spiffe/spire/cmd/spire-agent@$version"
        # gittag as SPIRE's release build sets it, so `-version` prints 1.13.3 (not 1.13.3-dev-unk).
        CGO_ENABLED=1 go build -trimpath -o "$out/" \
            -ldflags "-X github.com/spiffe/spire/pkg/common/version.gittag=${version#v}" \
            github.com/spiffe/spire/cmd/spire-server github.com/spiffe/spire/cmd/spire-agent
    )
}
mkdir -p "$dir"
peer_build_once "$dir/bin" build
mkdir -p "$cache/bin"
ln -sfn "$dir/bin/spire-server" "$cache/bin/upstream-spire-server"
ln -sfn "$dir/bin/spire-agent" "$cache/bin/upstream-spire-agent"
echo "upstream-spire-server, upstream-spire-agent: $dir/bin"
