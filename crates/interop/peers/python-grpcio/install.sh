#!/usr/bin/env bash
# Installs the Python grpcio client (client.py, requirements.txt pinned) into
# <cache>/python-grpcio-<grpcio version>-<hash of our sources and .proto files>/: a venv, the stubs
# grpcio-tools generates from our .proto files (gen/), and a copy of client.py. Skips the build when
# that directory exists; always rewrites <cache>/bin/python-grpc-client.
set -euo pipefail
cache="$1"
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../lib.sh"
protos="$(cd "$here/../../../proto/proto" && pwd)"
version="$(sed -n 's/^grpcio==//p' "$here/requirements.txt")"
# The stubs come from these files, so they are part of the key.
proto_files=(spiffe/workload/workload.proto spire/api/server/entry/v1/entry.proto)
while IFS= read -r f; do proto_files+=("$f"); done < <(cd "$protos" && ls spire/api/types/*.proto)
hash="$(cd "$here" && peer_hash requirements.txt client.py install.sh ../lib.sh "${proto_files[@]/#/$protos/}")"
dest="$cache/python-grpcio-$version-$hash"
build() {
    local out="$1"
    python3 -m venv "$out/venv"
    "$out/venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    mkdir "$out/gen"
    (cd "$protos" && "$out/venv/bin/python" -m grpc_tools.protoc -I. \
        --python_out="$out/gen" --grpc_python_out="$out/gen" "${proto_files[@]}")
    cp "$here/client.py" "$out/client.py"
    # Fail now, not in a test, if the stubs do not import.
    "$out/venv/bin/python" "$out/client.py" --help >/dev/null
    # The venv's python finds its packages through pyvenv.cfg next to it, so it survives the rename.
}
peer_build_once "$dest" build
mkdir -p "$cache/bin"
peer_wrapper "$cache/bin/python-grpc-client" "$dest/venv/bin/python" "$dest/client.py"
echo "python-grpc-client: $dest"
