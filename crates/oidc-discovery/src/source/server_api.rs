//! `server_api`: GetBundle of the server's Bundle API (JWT authorities only) on its private socket.

use std::path::Path;

use spire_identity::jwk::Jwk;
use spire_proto::spire::api::server::bundle::v1::GetBundleRequest;
use spire_proto::spire::api::server::bundle::v1::bundle_client::BundleClient;
use spire_proto::spire::api::types::BundleMask;
use tonic::transport::Channel;

use super::{SourceError, authority_jwk};

/// The Bundle API client.
#[derive(Debug)]
pub(super) struct ServerApi {
    client: BundleClient<Channel>,
}

impl ServerApi {
    pub(super) fn new(socket_path: &Path) -> Self {
        Self { client: BundleClient::new(super::unix_channel::connect_lazy(socket_path)) }
    }

    pub(super) async fn fetch(&mut self) -> Result<Vec<Jwk>, SourceError> {
        let mask = BundleMask { jwt_authorities: true, ..BundleMask::default() };
        let request = GetBundleRequest { output_mask: Some(mask) };
        let bundle = self.client.get_bundle(request).await?.into_inner();
        Ok(bundle.jwt_authorities.iter().filter_map(|k| authority_jwk(&k.key_id, &k.public_key)).collect())
    }
}
