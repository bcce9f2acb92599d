#!/usr/bin/env bash
# spire-rs quick start: builds spire-server and spire-agent, starts both on this machine (SQLite under
# a temporary directory), attests the agent with a join token, registers an entry for your uid, and
# prints the X509-SVID and JWT-SVID your shell gets through the SPIFFE Workload API. Both daemons keep
# running until you press Ctrl-C; then everything is stopped and removed.
set -euo pipefail
cd "$(dirname "$0")"

cargo build --release -p spire-server -p spire-agent
bin="${CARGO_TARGET_DIR:-target}/release"
work="$(mktemp -d)"
server_pid="" agent_pid=""
cleanup() {
    [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; echo "stopping"; exit 0' INT TERM

wait_for() { # file, process id, log
    for _ in $(seq 1 300); do
        [ -S "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || { cat "$3" >&2; echo "failed to start, see the log above" >&2; exit 1; }
        sleep 0.1
    done
    echo "timed out waiting for $1" >&2
    exit 1
}

# A free TCP port for the server, starting at SPIRE's 8081.
port=8081
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done

cat > "$work/server.conf" <<CONF
server {
    bind_address = "127.0.0.1"
    bind_port = "$port"
    socket_path = "$work/server.sock"
    trust_domain = "example.org"
    data_dir = "$work/server"
    log_level = "INFO"
}
plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = "$work/server/datastore.sqlite3"
        }
    }
    NodeAttestor "join_token" {
        plugin_data {}
    }
    KeyManager "disk" {
        plugin_data {
            keys_path = "$work/server/keys.json"
        }
    }
}
CONF
"$bin/spire-server" run -config "$work/server.conf" 2> "$work/server.log" &
server_pid=$!
wait_for "$work/server.sock" "$server_pid" "$work/server.log"
echo "spire-server is up on 127.0.0.1:$port (private socket $work/server.sock)"

server() { "$bin/spire-server" "$@" -socketPath "$work/server.sock"; }
token="$(server token generate | sed -n 's/^Token: //p')"
server bundle show > "$work/bundle.pem"
server entry create \
    -parentID "spiffe://example.org/spire/agent/join_token/$token" \
    -spiffeID "spiffe://example.org/quickstart/$(id -un)" \
    -selector "unix:uid:$(id -u)" -dns quickstart.example.org > /dev/null

cat > "$work/agent.conf" <<CONF
agent {
    trust_domain = "example.org"
    server_address = "127.0.0.1"
    server_port = "$port"
    socket_path = "$work/agent.sock"
    data_dir = "$work/agent"
    trust_bundle_path = "$work/bundle.pem"
    log_level = "INFO"
}
plugins {
    NodeAttestor "join_token" {
        plugin_data {}
    }
    KeyManager "disk" {
        plugin_data {
            directory = "$work/agent"
        }
    }
    WorkloadAttestor "unix" {
        plugin_data {}
    }
}
CONF
"$bin/spire-agent" run -config "$work/agent.conf" -joinToken "$token" 2> "$work/agent.log" &
agent_pid=$!
wait_for "$work/agent.sock" "$agent_pid" "$work/agent.log"
echo "spire-agent is attested and serves the Workload API on $work/agent.sock"
echo

echo "== X509-SVID for uid $(id -u), fetched through the Workload API =="
"$bin/spire-agent" api fetch x509 -socketPath "$work/agent.sock"
echo "== JWT-SVID for audience \"quickstart\" =="
"$bin/spire-agent" api fetch jwt -audience quickstart -socketPath "$work/agent.sock"
echo
echo "Server and agent keep running. Try, in another shell:"
echo "  $bin/spire-agent api fetch x509 -socketPath $work/agent.sock"
echo "  $bin/spire-server entry show -socketPath $work/server.sock"
echo "Press Ctrl-C to stop and clean up."
wait
