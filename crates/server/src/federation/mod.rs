//! Federation: the server's SPIFFE bundle endpoint, which other trust domains (and anyone holding a
//! bundle URL) fetch this trust domain's bundle from, and the bundle client fetching theirs.

pub mod bundle_endpoint;
pub mod client;

pub use bundle_endpoint::{BundleEndpointError, start};
