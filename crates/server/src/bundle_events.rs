//! The bundle's consumers among the plugins: Notifiers and BundlePublishers hear of the trust
//! domain's bundle once it is loaded at start, then of each change.
//!
//! A notifier refusing the loaded bundle stops the server (SPIRE's `NotifyAndAdvise`); every other
//! failure is logged and the next change tried again. Changes are found by reading the bundle every
//! [`POLL_INTERVAL`], so that those made by another server sharing the datastore count too.

use std::sync::Arc;
use std::time::Duration;

use spire_datastore::{DataStore, StoredBundle};
use spire_identity::TrustDomain;

use crate::catalog::bundlepublisher::BundlePublisher;
use crate::catalog::notifier::Notifier;

/// How often the bundle is read for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Why the loaded bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleEventsError {
    /// A notifier refused it.
    #[error("notifier {name:?} failed to process the loaded bundle: {message}")]
    Refused {
        /// The notifier.
        name: String,
        /// Its error, as SPIRE prints a gRPC status.
        message: String,
    },
    /// The bundle could not be read.
    #[error("reading the bundle: {0}")]
    DataStore(#[from] spire_datastore::DataStoreError),
}

/// The configured notifiers and publishers.
#[derive(Debug, Clone, Default)]
pub struct BundleConsumers {
    /// Notifier plugins.
    pub notifiers: Vec<Arc<dyn Notifier>>,
    /// BundlePublisher plugins.
    pub publishers: Vec<Arc<dyn BundlePublisher>>,
}

impl BundleConsumers {
    /// Whether there is nobody to tell.
    pub fn is_empty(&self) -> bool {
        self.notifiers.is_empty() && self.publishers.is_empty()
    }

    /// Hands the bundle as loaded at start to every consumer, then follows its changes in the
    /// background.
    pub async fn start(
        self,
        ds: Arc<dyn DataStore>,
        td: TrustDomain,
    ) -> Result<Option<tokio::task::JoinHandle<()>>, BundleEventsError> {
        if self.is_empty() {
            return Ok(None);
        }
        let loaded = ds.fetch_bundle(&td).await?;
        if let Some(bundle) = &loaded {
            for notifier in &self.notifiers {
                notifier.bundle_loaded(bundle).await.map_err(|s| BundleEventsError::Refused {
                    name: notifier.name().to_owned(),
                    message: spire_plugin_host::go_status(&s),
                })?;
            }
            self.publish(bundle).await;
        }
        Ok(Some(tokio::spawn(async move {
            let mut last = loaded;
            let mut ticker = tokio::time::interval(POLL_INTERVAL);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let current = match ds.fetch_bundle(&td).await {
                    Ok(current) => current,
                    Err(e) => {
                        tracing::warn!(error = %e, "Failed to read the bundle for its notifiers and publishers");
                        continue;
                    }
                };
                if current == last {
                    continue;
                }
                if let Some(bundle) = &current {
                    self.updated(bundle).await;
                }
                last = current;
            }
        })))
    }

    async fn updated(&self, bundle: &StoredBundle) {
        for notifier in &self.notifiers {
            if let Err(s) = notifier.bundle_updated(bundle).await {
                tracing::error!(notifier = notifier.name(), error = %spire_plugin_host::go_status(&s), "Failed to notify of the bundle update");
            }
        }
        self.publish(bundle).await;
    }

    async fn publish(&self, bundle: &StoredBundle) {
        for publisher in &self.publishers {
            match publisher.publish(bundle).await {
                Ok(()) => tracing::debug!(bundle_publisher = publisher.name(), "Bundle published"),
                Err(s) => {
                    tracing::error!(bundle_publisher = publisher.name(), error = %spire_plugin_host::go_status(&s), "Failed to publish bundle")
                }
            }
        }
    }
}
