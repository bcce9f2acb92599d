//! An external Notifier: SPIRE's `NotifyAndAdvise` and `Notify` behind our [`Notifier`] trait.

use spire_datastore::StoredBundle;
use spire_proto::spire::plugin::server::notifier::v1 as pb;
use tonic::Status;
use tonic::transport::Channel;

use super::{bundle, facade_status};
use crate::catalog::notifier::Notifier;

/// The SDK service an external Notifier serves.
pub const SERVICE: &str = "spire.plugin.server.notifier.v1.Notifier";

/// A Notifier served by an external plugin.
#[derive(Debug, Clone)]
pub struct ExternalNotifier {
    name: String,
    client: pb::notifier_client::NotifierClient<Channel>,
}

impl ExternalNotifier {
    /// The facade for the plugin `name` on `channel`.
    pub fn new(name: &str, channel: Channel) -> Self {
        Self { name: name.to_owned(), client: pb::notifier_client::NotifierClient::new(channel) }
    }
}

#[async_trait::async_trait]
impl Notifier for ExternalNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn bundle_loaded(&self, stored: &StoredBundle) -> Result<(), Status> {
        let event = pb::notify_and_advise_request::Event::BundleLoaded(pb::BundleLoaded {
            bundle: Some(bundle::to_plugin(stored)),
        });
        self.client
            .clone()
            .notify_and_advise(pb::NotifyAndAdviseRequest { event: Some(event) })
            .await
            .map(|_| ())
            .map_err(|s| facade_status("notifier", &self.name, &s))
    }

    async fn bundle_updated(&self, stored: &StoredBundle) -> Result<(), Status> {
        let event =
            pb::notify_request::Event::BundleUpdated(pb::BundleUpdated { bundle: Some(bundle::to_plugin(stored)) });
        self.client
            .clone()
            .notify(pb::NotifyRequest { event: Some(event) })
            .await
            .map(|_| ())
            .map_err(|s| facade_status("notifier", &self.name, &s))
    }
}
