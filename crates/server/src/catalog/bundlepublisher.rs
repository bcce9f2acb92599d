//! BundlePublisher plugins: given the trust domain's bundle at start and whenever it changes, to
//! publish it somewhere (a bucket, a config map). This build has no built-in publisher; external
//! ones run behind this trait.

use spire_datastore::StoredBundle;
use tonic::Status;

/// A BundlePublisher plugin.
#[async_trait::async_trait]
pub trait BundlePublisher: Send + Sync + std::fmt::Debug {
    /// The plugin's name.
    fn name(&self) -> &str;

    /// Publishes `bundle`; an error is logged and the bundle published again at the next change.
    async fn publish(&self, bundle: &StoredBundle) -> Result<(), Status>;
}
