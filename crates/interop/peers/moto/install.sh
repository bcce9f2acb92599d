#!/usr/bin/env bash
# Installs moto in server mode (requirements.txt, pinned) into
# <cache>/moto-<moto version>-<hash of our sources>/: a venv and a copy of aws_setup.py. Skips the
# build when that directory exists; always rewrites <cache>/bin/moto-server (`python -m moto.server`:
# AWS's EC2, IAM and STS APIs on a local port) and <cache>/bin/moto-aws-setup (boto3 setting up
# instances in it). The venv's own scripts are not used: their #! lines name the build directory,
# which is renamed when the build is done.
set -euo pipefail
cache="$1"
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../lib.sh"
version="$(sed -n 's/^moto\[server\]==//p' "$here/requirements.txt")"
hash="$(cd "$here" && peer_hash requirements.txt aws_setup.py install.sh ../lib.sh)"
dest="$cache/moto-$version-$hash"
build() {
    local out="$1"
    python3 -m venv "$out/venv"
    "$out/venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/aws_setup.py" "$out/aws_setup.py"
    # Fail now, not in a test, if moto or boto3 do not import.
    "$out/venv/bin/python" -c 'import moto.server, boto3'
    "$out/venv/bin/python" "$out/aws_setup.py" --help >/dev/null
}
peer_build_once "$dest" build
mkdir -p "$cache/bin"
peer_wrapper "$cache/bin/moto-server" "$dest/venv/bin/python" -m moto.server
peer_wrapper "$cache/bin/moto-aws-setup" "$dest/venv/bin/python" "$dest/aws_setup.py"
echo "moto: $dest"
