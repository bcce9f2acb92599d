# Shared by the peers' install.sh scripts (sourced): build once into a directory keyed by version and
# by a hash of our sources, atomically, and point an executable in <cache>/bin at the result.

# The first 12 hex digits of the SHA-256 of the given files, in order.
peer_hash() {
    cat "$@" | sha256sum | cut -c1-12
}

# peer_build_once DEST BUILD: unless DEST exists, runs BUILD with a fresh directory beside DEST (mode
# 755) and renames it to DEST, so an interrupted build never looks complete.
peer_build_once() {
    local dest="$1" build="$2" tmp
    [ -e "$dest" ] && return 0
    mkdir -p "$(dirname "$dest")"
    tmp="$(mktemp -d "$(dirname "$dest")/.build.XXXXXX")"
    chmod 755 "$tmp"
    # shellcheck disable=SC2064 # expand now: the trap must remove this build's directory
    trap "rm -rf '$tmp'" EXIT
    "$build" "$tmp"
    mv "$tmp" "$dest"
    trap - EXIT
}

# peer_wrapper PATH COMMAND...: writes an executable at PATH that runs COMMAND with its arguments.
peer_wrapper() {
    local path="$1"
    shift
    { printf '#!/bin/sh\nexec'; printf ' "%s"' "$@"; printf ' "$@"\n'; } > "$path.tmp"
    chmod 755 "$path.tmp"
    mv "$path.tmp" "$path"
}

# peer_scratch_module DIR NAME: makes DIR the current directory holding a fresh Go module NAME (for
# Go peers built as tools of a wrapper module), written afresh so that a half-done `go get` from an
# interrupted run is redone. Call it in a subshell.
peer_scratch_module() {
    cd "$1"
    rm -f go.mod go.sum
    go mod init "$2" >/dev/null 2>&1
}
