#!/usr/bin/env bash
# Builds the grpc-java Workload API client (pom.xml pinned, WorkloadClient.java, message classes
# protoc generates from our workload.proto) into <cache>/grpc-java-<grpc version>-<hash of our
# sources>/ (the jar and its runtime classpath in lib/), unless that directory exists; always
# rewrites <cache>/bin/grpc-java-client. Maven's local repository stays at ~/.m2.
set -euo pipefail
cache="$1"
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../lib.sh"
protos="$(cd "$here/../../../proto/proto" && pwd)"
version="$(sed -n 's|.*<grpc.version>\(.*\)</grpc.version>.*|\1|p' "$here/pom.xml")"
hash="$(cd "$here" && peer_hash pom.xml src/main/java/WorkloadClient.java install.sh ../lib.sh \
    "$protos/spiffe/workload/workload.proto")"
dest="$cache/grpc-java-$version-$hash"
build() {
    local out="$1" work
    work="$(mktemp -d)"
    cp -r "$here/pom.xml" "$here/src" "$work/"
    mvn -B -q -f "$work/pom.xml" -Dproto.dir="$protos" package
    cp "$work/target/grpc-java-client.jar" "$out/"
    cp -r "$work/target/lib" "$out/lib"
    rm -rf "$work"
    # Fail now, not in a test, if the classpath or epoll's native library is incomplete: with no
    # agent behind the socket the client must get as far as an UNAVAILABLE call (exit 3).
    local rc=0
    java -cp "$out/grpc-java-client.jar:$out/lib/*" WorkloadClient x509 --socket "$out/none.sock" \
        >/dev/null 2>"$out/smoke.err" || rc=$?
    if [ "$rc" -ne 3 ]; then
        cat "$out/smoke.err" >&2
        echo "grpc-java client smoke run exited $rc, expected 3 (UNAVAILABLE)" >&2
        exit 1
    fi
    rm -f "$out/smoke.err"
}
peer_build_once "$dest" build
mkdir -p "$cache/bin"
peer_wrapper "$cache/bin/grpc-java-client" java -cp "$dest/grpc-java-client.jar:$dest/lib/*" WorkloadClient
echo "grpc-java-client: $dest"
