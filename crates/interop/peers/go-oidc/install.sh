#!/usr/bin/env bash
# Builds go-oidc-verify (main.go, an OIDC relying party on github.com/coreos/go-oidc/v3 v3.21.0 as
# pinned in go.mod/go.sum) into <cache>/go-oidc-v3.21.0-<hash of our sources>/ unless that directory
# exists, then points <cache>/bin/go-oidc-verify at it.
set -euo pipefail
cache="$1"
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../lib.sh"
version=v3.21.0
dest="$cache/go-oidc-$version-$(cd "$here" && peer_hash go.mod go.sum main.go install.sh ../lib.sh)"
build() {
    (cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -o "$1/go-oidc-verify" .)
}
peer_build_once "$dest" build
mkdir -p "$cache/bin"
ln -sfn "$dest/go-oidc-verify" "$cache/bin/go-oidc-verify"
echo "go-oidc-verify: $dest"
