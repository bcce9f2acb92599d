//! An external BundlePublisher: SPIRE's `PublishBundle` behind our [`BundlePublisher`] trait.

use spire_datastore::StoredBundle;
use spire_proto::spire::plugin::server::bundlepublisher::v1 as pb;
use tonic::Status;
use tonic::transport::Channel;

use super::{bundle, facade_status};
use crate::catalog::bundlepublisher::BundlePublisher;

/// The SDK service an external BundlePublisher serves.
pub const SERVICE: &str = "spire.plugin.server.bundlepublisher.v1.BundlePublisher";

/// A BundlePublisher served by an external plugin.
#[derive(Debug, Clone)]
pub struct ExternalBundlePublisher {
    name: String,
    client: pb::bundle_publisher_client::BundlePublisherClient<Channel>,
}

impl ExternalBundlePublisher {
    /// The facade for the plugin `name` on `channel`.
    pub fn new(name: &str, channel: Channel) -> Self {
        Self { name: name.to_owned(), client: pb::bundle_publisher_client::BundlePublisherClient::new(channel) }
    }
}

#[async_trait::async_trait]
impl BundlePublisher for ExternalBundlePublisher {
    fn name(&self) -> &str {
        &self.name
    }

    async fn publish(&self, stored: &StoredBundle) -> Result<(), Status> {
        self.client
            .clone()
            .publish_bundle(pb::PublishBundleRequest { bundle: Some(bundle::to_plugin(stored)) })
            .await
            .map(|_| ())
            .map_err(|s| facade_status("bundlepublisher", &self.name, &s))
    }
}
