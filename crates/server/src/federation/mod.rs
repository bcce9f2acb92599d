//! Federation: the server's SPIFFE bundle endpoint, which other trust domains (and anyone holding a
//! bundle URL) fetch this trust domain's bundle from.

pub mod bundle_endpoint;
pub mod serving_cert;

pub use bundle_endpoint::{BundleEndpointError, start};
