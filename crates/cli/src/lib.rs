//! Command-line plumbing shared by `spire-server` and `spire-agent`, and the `spire-server`
//! administration commands.
//!
//! SPIRE users' scripts must work unchanged, so everything here follows SPIRE's Go CLI to the byte:
//! single-dash camelCase flags with Go `flag` semantics ([`flags`](crate::flags)), SPIRE's pretty
//! layouts, protojson-shaped `-output json`, `Error: <message>` on stderr with exit code 1.
//!
//! The entry point is [`server::run`]; the `spire-server` binary handles `run` and `validate` itself and
//! hands every other command line to it.

pub mod agent;
mod client;
pub mod error;
pub mod flags;
pub mod goerror;
pub mod gotime;
pub mod logging;
pub mod output;
pub mod server;
pub mod version;

pub use error::CliError;
