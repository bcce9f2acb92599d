//! SPIRE's configuration files, read the way SPIRE reads them.
//!
//! SPIRE users' `server.conf` (and later `agent.conf`) files must load unchanged, and mistakes must
//! be refused with the key's name and line rather than silently ignored. This crate has two layers:
//!
//! * generic loading, reused by both binaries: [`load`] (file or text, `-expandEnv`, HCL v1 or
//!   JSON) into a positioned [`Value`] tree, and [`Reader`], which decodes a section with HCL v1's
//!   coercions and reports unknown keys and mistyped values with their path and line;
//! * the typed configurations: [`ServerConfig`] with SPIRE's defaults and validation, the
//!   `plugins` block ([`Plugins`], [`PluginConfig`]) and the built-in plugins' data
//!   ([`plugin_data`]).
//!
//! Go durations ([`duration`]) are parsed and printed exactly as Go does.

pub mod agent;
pub mod decode;
pub mod duration;
pub mod env;
pub mod error;
pub mod federation;
mod hcl;
pub mod hcl_text;
pub mod health;
pub mod inert;
mod json;
pub mod load;
pub mod log;
pub mod plugin_data;
pub mod plugins;
pub mod server;
pub mod telemetry;
pub mod value;

pub use agent::{AgentConfig, AgentOverrides};
pub use decode::{Reader, UnknownKeys};
pub use duration::{DurationError, GoDuration, format_duration, parse_duration};
pub use error::{ConfigError, Diagnostics};
pub use inert::{InertSetting, WrittenKeys};
pub use load::{Format, parse_str, read_file};
pub use plugins::{Cardinality, PluginConfig, Plugins};
pub use server::{ServerConfig, ServerOverrides};
pub use value::{Entry, Kind, Pos, Value};

/// `host:port`, with an IPv6 host in brackets.
pub(crate) fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}
