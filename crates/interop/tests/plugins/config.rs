//! The configuration loading the test plugins, the same HCL for SPIRE's daemons and ours: SPIRE's
//! keys (`plugin_cmd`, `plugin_checksum`, `plugin_args`, `plugin_data`).

use std::path::Path;

use super::TestPlugin;

/// The trust domain of every test.
pub(crate) const TRUST_DOMAIN: &str = "example.org";

/// The secret the challenge node attestor pair shares.
pub(crate) const SECRET: &str = "open sesame";

/// The node name the agent's challenge attestor sends.
pub(crate) const NODE_NAME: &str = "node-1";

/// The label the workload attestor gives every workload.
pub(crate) const LABEL: &str = "blue";

/// A plugin block `<kind> "<name>"` running `plugin` with `args`, `data` as its `plugin_data` body.
pub(crate) fn external(kind: &str, name: &str, plugin: &TestPlugin, args: &[&str], data: &str) -> String {
    let args = if args.is_empty() {
        String::new()
    } else {
        let quoted: Vec<String> = args.iter().map(|a| format!("\"{a}\"")).collect();
        format!("        plugin_args = [{}]\n", quoted.join(", "))
    };
    format!(
        "    {kind} \"{name}\" {{\n        plugin_cmd = \"{cmd}\"\n        plugin_checksum = \"{checksum}\"\n{args}        plugin_data {{\n{data}        }}\n    }}\n",
        cmd = plugin.path.display(),
        checksum = plugin.checksum,
    )
}

/// `key = "value"` lines of a `plugin_data` body.
pub(crate) fn data(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("            {k} = \"{v}\"\n")).collect()
}

/// A server config for `dir` (private socket `<dir>/api.sock`, data under `<dir>/data`, log at
/// `<dir>/server.log` when `log_to_file`) on `127.0.0.1:<port>`, with SQLite and `plugins` (which
/// must name a KeyManager and a NodeAttestor), `extra` lines added to the `server` block.
pub(crate) fn server(dir: &Path, port: u16, plugins: &str, log_to_file: bool, extra: &str) -> String {
    let data = dir.join("data");
    let log_file =
        if log_to_file { format!("    log_file = \"{}\"\n", dir.join("server.log").display()) } else { String::new() };
    format!(
        r#"server {{
    bind_address = "127.0.0.1"
    bind_port = "{port}"
    socket_path = "{socket}"
    trust_domain = "{TRUST_DOMAIN}"
    data_dir = "{data}"
    log_level = "DEBUG"
{log_file}{extra}    experimental {{
        cache_reload_interval = "1s"
    }}
}}

plugins {{
    DataStore "sql" {{
        plugin_data {{
            database_type = "sqlite3"
            connection_string = "{data}/datastore.sqlite3"
        }}
    }}
{plugins}}}
"#,
        socket = dir.join("api.sock").display(),
        data = data.display(),
    )
}

/// An agent config for `dir` (Workload API socket `<dir>/api.sock`, data under `<dir>/data`) for a
/// server at `127.0.0.1:<server_port>`, with `plugins` (which must name a KeyManager, a NodeAttestor
/// and a WorkloadAttestor); its log goes to stdout.
pub(crate) fn agent(dir: &Path, server_port: u16, plugins: &str) -> String {
    format!(
        r#"agent {{
    trust_domain = "{TRUST_DOMAIN}"
    server_address = "127.0.0.1"
    server_port = "{server_port}"
    socket_path = "{socket}"
    data_dir = "{data}"
    log_level = "DEBUG"
    insecure_bootstrap = true
}}

plugins {{
{plugins}}}
"#,
        socket = dir.join("api.sock").display(),
        data = dir.join("data").display(),
    )
}
