//! Notifier plugins: told when the trust domain's bundle is first loaded (and may veto the start)
//! and whenever it changes afterwards. This build has no built-in notifier; external ones run
//! behind this trait.

use spire_datastore::StoredBundle;
use tonic::Status;

/// A Notifier plugin.
#[async_trait::async_trait]
pub trait Notifier: Send + Sync + std::fmt::Debug {
    /// The plugin's name.
    fn name(&self) -> &str;

    /// The bundle as loaded at start (SPIRE's `NotifyAndAdvise(BundleLoaded)`); an error stops the
    /// server.
    async fn bundle_loaded(&self, bundle: &StoredBundle) -> Result<(), Status>;

    /// The bundle changed (SPIRE's `Notify(BundleUpdated)`); an error is logged.
    async fn bundle_updated(&self, bundle: &StoredBundle) -> Result<(), Status>;
}
