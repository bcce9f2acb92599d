#!/usr/bin/env bash
# Builds the real Kubernetes v1.36.3 kube-apiserver and kube-controller-manager from the Go module
# proxy into <cache>/kubernetes-1.36.3/bin unless that directory is already there, then points
# <cache>/bin/kube-apiserver and kube-controller-manager at them.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces its staging modules (k8s.io/api,
# k8s.io/apiserver, ...) with local paths and requires them at v0.0.0. A scratch wrapper module requires
# it and replaces each staging module with its published v0.36.3, read from that release's go.mod.
set -euo pipefail
cache="$1"
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../lib.sh"
version=1.36.3
staging="v0.${version#1.}"
dir="$cache/kubernetes-$version"
build() {
    local out="$1" gomod
    (
        peer_scratch_module "$dir" local/kas
        go mod edit -require="k8s.io/kubernetes@v$version"
        gomod="$(go mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
        for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$gomod"); do
            go mod edit -replace="$m=$m@$staging"
        done
        go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$version" "k8s.io/kubernetes/cmd/kube-controller-manager@v$version"
        CGO_ENABLED=0 go build -trimpath -o "$out/" \
            -ldflags "-X k8s.io/component-base/version.gitVersion=v$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=36" \
            k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
    )
}
mkdir -p "$dir"
peer_build_once "$dir/bin" build
mkdir -p "$cache/bin"
ln -sfn "$dir/bin/kube-apiserver" "$cache/bin/kube-apiserver"
ln -sfn "$dir/bin/kube-controller-manager" "$cache/bin/kube-controller-manager"
echo "kube-apiserver, kube-controller-manager: $dir/bin"
