//! An external UpstreamAuthority: SPIRE's `MintX509CAAndSubscribe` and `PublishJWTKeyAndSubscribe`
//! streams behind our [`UpstreamAuthority`] trait. The first answer of each stream is the signed CA
//! (or the upstream JWT keys); later answers are upstream bundle changes, followed in the
//! background for as long as the plugin keeps the stream open.

use std::sync::Mutex;

use spire_datastore::JwtKey;
use spire_proto::spire::plugin::server::upstreamauthority::v1 as pb;
use spire_proto::spire::plugin::types;
use tokio::sync::watch;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::facade_status;
use crate::catalog::upstreamauthority::{
    CaRequest, MintedCa, UpstreamAuthority, UpstreamAuthorityError, UpstreamBundle,
};

/// The SDK service an external UpstreamAuthority serves.
pub const SERVICE: &str = "spire.plugin.server.upstreamauthority.v1.UpstreamAuthority";

/// An UpstreamAuthority served by an external plugin.
#[derive(Debug)]
pub struct ExternalUpstreamAuthority {
    name: String,
    client: pb::upstream_authority_client::UpstreamAuthorityClient<Channel>,
    updates: watch::Sender<UpstreamBundle>,
    // The streams following the latest mint and publish; replaced by the next ones.
    followers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for ExternalUpstreamAuthority {
    fn drop(&mut self) {
        for task in self.followers.lock().expect("not poisoned").drain(..) {
            task.abort();
        }
    }
}

impl ExternalUpstreamAuthority {
    /// The facade for the plugin `name` on `channel`.
    pub fn new(name: &str, channel: Channel) -> Self {
        Self {
            name: name.to_owned(),
            client: pb::upstream_authority_client::UpstreamAuthorityClient::new(channel),
            updates: watch::channel(UpstreamBundle::default()).0,
            followers: Mutex::new(Vec::new()),
        }
    }

    fn fail(&self, status: &Status) -> UpstreamAuthorityError {
        let status = facade_status("upstreamauthority", &self.name, status);
        UpstreamAuthorityError::Plugin {
            plugin: format!("upstreamauthority({})", self.name),
            message: spire_plugin_host::go_status(&status),
        }
    }

    fn internal(&self, message: &str) -> UpstreamAuthorityError {
        self.fail(&Status::new(Code::Internal, message))
    }

    fn follow(&self, task: tokio::task::JoinHandle<()>) {
        self.followers.lock().expect("not poisoned").push(task);
    }
}

fn ders(certs: Vec<types::X509Certificate>) -> Vec<Vec<u8>> {
    certs.into_iter().map(|c| c.asn1).collect()
}

fn jwt_keys(keys: Vec<types::JwtKey>) -> Vec<JwtKey> {
    keys.into_iter()
        .map(|k| JwtKey {
            key_id: k.key_id,
            public_key_der: k.public_key,
            expires_at: k.expires_at,
            tainted: k.tainted,
        })
        .collect()
}

#[async_trait::async_trait]
impl UpstreamAuthority for ExternalUpstreamAuthority {
    async fn mint_x509_ca(&self, request: CaRequest<'_>) -> Result<MintedCa, UpstreamAuthorityError> {
        let preferred_ttl = i32::try_from(request.ttl.as_secs()).unwrap_or(i32::MAX);
        let mut client = self.client.clone();
        let mut stream = client
            .mint_x509ca_and_subscribe(pb::MintX509caRequest { csr: request.csr.to_vec(), preferred_ttl })
            .await
            .map_err(|s| self.fail(&s))?
            .into_inner();
        let first = match stream.message().await {
            Ok(Some(first)) => first,
            Ok(None) => return Err(self.internal("plugin closed stream unexpectedly")),
            Err(s) => return Err(self.fail(&s)),
        };
        if first.x509_ca_chain.is_empty() {
            return Err(self.internal("plugin response missing X.509 CA chain"));
        }
        if first.upstream_x509_roots.is_empty() {
            return Err(self.internal("plugin response missing upstream X.509 roots"));
        }
        let minted = MintedCa { chain: ders(first.x509_ca_chain), upstream_roots: ders(first.upstream_x509_roots) };
        self.updates.send_modify(|b| b.x509_roots = minted.upstream_roots.clone());
        let (updates, name) = (self.updates.clone(), self.name.clone());
        self.follow(tokio::spawn(async move {
            loop {
                match stream.message().await {
                    Ok(Some(update)) if update.x509_ca_chain.is_empty() && !update.upstream_x509_roots.is_empty() => {
                        updates.send_modify(|b| b.x509_roots = ders(update.upstream_x509_roots));
                    }
                    Ok(Some(_)) => tracing::warn!(plugin_name = %name, "Ignoring a malformed upstream X.509 roots update"),
                    Ok(None) => break,
                    Err(s) => {
                        tracing::debug!(plugin_name = %name, error = %spire_plugin_host::go_status(&s), "Upstream X.509 roots stream ended");
                        break;
                    }
                }
            }
        }));
        Ok(minted)
    }

    async fn publish_jwt_key(&self, key: &JwtKey) -> Result<Option<Vec<JwtKey>>, UpstreamAuthorityError> {
        let jwt_key = types::JwtKey {
            public_key: key.public_key_der.clone(),
            key_id: key.key_id.clone(),
            expires_at: key.expires_at,
            tainted: key.tainted,
        };
        let mut client = self.client.clone();
        let mut stream =
            match client.publish_jwt_key_and_subscribe(pb::PublishJwtKeyRequest { jwt_key: Some(jwt_key) }).await {
                Ok(response) => response.into_inner(),
                Err(s) if s.code() == Code::Unimplemented => return Ok(None),
                Err(s) => return Err(self.fail(&s)),
            };
        let first = match stream.message().await {
            Ok(Some(first)) => first,
            Ok(None) => return Err(self.internal("plugin closed stream unexpectedly")),
            Err(s) if s.code() == Code::Unimplemented => return Ok(None),
            Err(s) => return Err(self.fail(&s)),
        };
        let keys = jwt_keys(first.upstream_jwt_keys);
        self.updates.send_modify(|b| b.jwt_keys = keys.clone());
        let updates = self.updates.clone();
        self.follow(tokio::spawn(async move {
            while let Ok(Some(update)) = stream.message().await {
                updates.send_modify(|b| b.jwt_keys = jwt_keys(update.upstream_jwt_keys));
            }
        }));
        Ok(Some(keys))
    }

    fn bundle_updates(&self) -> Option<watch::Receiver<UpstreamBundle>> {
        Some(self.updates.subscribe())
    }
}
