//! The `plugin_data` of UpstreamAuthority `spire`, with SPIRE v1.13.3's keys:
//!
//! ```hcl
//! plugin_data {
//!   server_address = "upstream-spire-server"
//!   server_port = "8081"
//!   workload_api_socket = "/tmp/spire-agent/public/api.sock"
//!   experimental { require_pq_kem = false }
//! }
//! ```

use std::path::PathBuf;

use spire_config::plugin_data::decode;
use spire_config::{ConfigError, PluginConfig, Reader};

/// The decoded `plugin_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpireUpstreamConfig {
    /// `server_address:server_port`, the upstream server's API endpoint.
    pub server_addr: String,
    /// `workload_api_socket`, made absolute as SPIRE does.
    pub workload_api_socket: PathBuf,
    /// `experimental.require_pq_kem`: only a post-quantum key exchange is offered to the upstream.
    pub require_pq_kem: bool,
}

impl SpireUpstreamConfig {
    /// Decodes the plugin's data; nothing is opened.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        decode(plugin, read)
    }
}

fn read(r: &mut Reader<'_, '_>) -> SpireUpstreamConfig {
    let address = r.string("server_address").unwrap_or_default();
    let port = r.string("server_port").unwrap_or_default();
    let socket = r.string("workload_api_socket").unwrap_or_default();
    let line = r.pos().line;
    let path = r.path().to_owned();
    let mut require_pq_kem = false;
    let mut named_pipe = false;
    if let Some(mut experimental) = r.object("experimental") {
        require_pq_kem = experimental.bool("require_pq_kem").unwrap_or(false);
        named_pipe = experimental.non_empty_string("workload_api_named_pipe_name").is_some();
        experimental.finish();
    }
    if named_pipe {
        r.diags().error(ConfigError::invalid(
            format!(
                "{path}: unable to set Workload API address: configuration: workload_api_named_pipe_name is not \
                 supported in this platform; please use workload_api_socket instead"
            ),
            line,
        ));
    }
    let socket = PathBuf::from(socket);
    let workload_api_socket =
        if socket.is_absolute() { socket } else { std::env::current_dir().map(|d| d.join(&socket)).unwrap_or(socket) };
    SpireUpstreamConfig { server_addr: format!("{address}:{port}"), workload_api_socket, require_pq_kem }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(data: &str) -> PluginConfig {
        PluginConfig::built_in("UpstreamAuthority", "spire", data).expect("test plugin data parses")
    }

    #[test]
    fn reads_spires_keys() {
        let c = SpireUpstreamConfig::from_plugin(&plugin(
            "server_address = \"up\" server_port = 8081 workload_api_socket = \"/run/a.sock\" \
             experimental { require_pq_kem = true }",
        ))
        .unwrap();
        assert_eq!(c.server_addr, "up:8081");
        assert_eq!(c.workload_api_socket, PathBuf::from("/run/a.sock"));
        assert!(c.require_pq_kem);
        let err = SpireUpstreamConfig::from_plugin(&plugin(
            "workload_api_socket = \"/a\" experimental { workload_api_named_pipe_name = \"p\" }",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("workload_api_named_pipe_name is not supported"), "{err}");
    }
}
