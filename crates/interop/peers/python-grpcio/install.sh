#!/usr/bin/env bash
# Installs the Python grpcio client (client.py, requirements.txt pinned) into
# <cache>/python-grpcio-<grpcio version>-<hash of our sources and .proto files>/: a venv, the stubs
# grpcio-tools generates from our .proto files (gen/), and a copy of client.py. Skips the build when
# that directory exists; always rewrites <cache>/bin/python-grpc-client.
set -euo pipefail
cache="$1"
here="$(cd "$(dirname "$0")" && pwd)"
protos="$(cd "$here/../../../proto/proto" && pwd)"
version="$(sed -n 's/^grpcio==//p' "$here/requirements.txt")"
# The stubs come from these files, so they are part of the key.
proto_files=(spiffe/workload/workload.proto spire/api/server/entry/v1/entry.proto)
while IFS= read -r f; do proto_files+=("$f"); done < <(cd "$protos" && ls spire/api/types/*.proto)
hash="$( (cd "$here" && cat requirements.txt client.py install.sh; cd "$protos" && cat "${proto_files[@]}") \
    | sha256sum | cut -c1-12)"
dest="$cache/python-grpcio-$version-$hash"
mkdir -p "$cache/bin"
if [ ! -d "$dest" ]; then
    # Build beside the final directory and rename, so an interrupted build never looks complete.
    tmp="$(mktemp -d "$cache/.python-grpcio-build.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    chmod 755 "$tmp"
    python3 -m venv "$tmp/venv"
    "$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    mkdir "$tmp/gen"
    (cd "$protos" && "$tmp/venv/bin/python" -m grpc_tools.protoc -I. \
        --python_out="$tmp/gen" --grpc_python_out="$tmp/gen" "${proto_files[@]}")
    cp "$here/client.py" "$tmp/client.py"
    # Fail now, not in a test, if the stubs do not import.
    "$tmp/venv/bin/python" "$tmp/client.py" --help >/dev/null
    # The venv's python finds its packages through pyvenv.cfg next to it, so it survives the rename.
    mv "$tmp" "$dest"
    trap - EXIT
fi
wrapper="$cache/bin/python-grpc-client"
printf '#!/bin/sh\nexec "%s/venv/bin/python" "%s/client.py" "$@"\n' "$dest" "$dest" > "$wrapper.tmp"
chmod 755 "$wrapper.tmp"
mv "$wrapper.tmp" "$wrapper"
echo "python-grpc-client: $dest"
