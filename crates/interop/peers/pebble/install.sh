#!/usr/bin/env bash
# Builds pebble, Let's Encrypt's ACME test CA (v2.10.3, pinned as a tool in go.mod/go.sum), into
# <cache>/pebble-v2.10.3-<hash of our sources>/ unless that directory exists, with its test
# certificates beside it (certs/pebble.minica.pem, the root of its HTTPS certificate, and
# certs/localhost/{cert,key}.pem, that certificate), then points <cache>/bin/pebble at it.
set -euo pipefail
cache="$1"
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../lib.sh"
version=v2.10.3
dest="$cache/pebble-$version-$(cd "$here" && peer_hash go.mod go.sum install.sh ../lib.sh)"
build() {
    local src
    (cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -o "$1/pebble" github.com/letsencrypt/pebble/v2/cmd/pebble)
    src="$(cd "$here" && GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' github.com/letsencrypt/pebble/v2)"
    mkdir -p "$1/certs/localhost"
    cp "$src/test/certs/pebble.minica.pem" "$1/certs/"
    cp "$src/test/certs/localhost/cert.pem" "$src/test/certs/localhost/key.pem" "$1/certs/localhost/"
    chmod -R u+w "$1/certs"
}
peer_build_once "$dest" build
mkdir -p "$cache/bin"
ln -sfn "$dest/pebble" "$cache/bin/pebble"
echo "pebble: $dest"
