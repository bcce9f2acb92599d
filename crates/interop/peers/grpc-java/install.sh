#!/usr/bin/env bash
# Builds the grpc-java Workload API client (pom.xml pinned, WorkloadClient.java, message classes
# protoc generates from our workload.proto) into <cache>/grpc-java-<grpc version>-<hash of our
# sources>/ (the jar and its runtime classpath in lib/), unless that directory exists; always
# rewrites <cache>/bin/grpc-java-client. Maven's local repository stays at ~/.m2.
set -euo pipefail
cache="$1"
here="$(cd "$(dirname "$0")" && pwd)"
protos="$(cd "$here/../../../proto/proto" && pwd)"
version="$(sed -n 's|.*<grpc.version>\(.*\)</grpc.version>.*|\1|p' "$here/pom.xml")"
hash="$( (cd "$here" && cat pom.xml src/main/java/WorkloadClient.java install.sh; cat "$protos/spiffe/workload/workload.proto") \
    | sha256sum | cut -c1-12)"
dest="$cache/grpc-java-$version-$hash"
mkdir -p "$cache/bin"
if [ ! -d "$dest" ]; then
    # Build beside the final directory and rename, so an interrupted build never looks complete.
    tmp="$(mktemp -d "$cache/.grpc-java-build.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    mkdir "$tmp/work" "$tmp/out"
    cp -r "$here/pom.xml" "$here/src" "$tmp/work/"
    mvn -B -q -f "$tmp/work/pom.xml" -Dproto.dir="$protos" package
    cp "$tmp/work/target/grpc-java-client.jar" "$tmp/out/"
    cp -r "$tmp/work/target/lib" "$tmp/out/lib"
    chmod 755 "$tmp/out"
    # Fail now, not in a test, if the classpath or epoll's native library is incomplete: with no
    # agent behind the socket the client must get as far as an UNAVAILABLE call (exit 3).
    rc=0
    java -cp "$tmp/out/grpc-java-client.jar:$tmp/out/lib/*" WorkloadClient x509 --socket "$tmp/none.sock" \
        >/dev/null 2>"$tmp/smoke.err" || rc=$?
    if [ "$rc" -ne 3 ]; then
        cat "$tmp/smoke.err" >&2
        echo "grpc-java client smoke run exited $rc, expected 3 (UNAVAILABLE)" >&2
        exit 1
    fi
    mv "$tmp/out" "$dest"
    rm -rf "$tmp"
    trap - EXIT
fi
wrapper="$cache/bin/grpc-java-client"
printf '#!/bin/sh\nexec java -cp "%s/grpc-java-client.jar:%s/lib/*" WorkloadClient "$@"\n' "$dest" "$dest" > "$wrapper.tmp"
chmod 755 "$wrapper.tmp"
mv "$wrapper.tmp" "$wrapper"
echo "grpc-java-client: $dest"
