//! The SPIRE server: signing authority and registry of one trust domain.

pub mod api;
pub mod authorized;
pub mod bundle_events;
pub mod ca;
pub mod catalog;
pub mod cli_run;
pub mod endpoints;
pub mod federation;
pub mod inert_settings;
pub mod maintenance;
pub mod run;
pub mod server_svid;
