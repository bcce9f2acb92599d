//! `gcp_iit`: the agent asks the GCE metadata server for an instance identity token (audience
//! `spire-gcp-node-attestor`, `format=full`) and sends it as the payload; the server checks it
//! against Google's keys.
//!
//! Configuration, as SPIRE's agent plugin takes it: `identity_token_host` (default
//! `metadata.google.internal`) and `service_account` (default `default`). A token is fetched at
//! every attestation.

use std::time::Duration;

use async_trait::async_trait;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use spire_attestation::gcp_iit::{DEFAULT_IDENTITY_TOKEN_HOST, DEFAULT_SERVICE_ACCOUNT, identity_token_path};
use spire_config::{ConfigError, PluginConfig};

use super::{NodeAttestor, NodeAttestorError};

pub use spire_attestation::gcp_iit::PLUGIN_NAME;

/// The plugin's `plugin_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcpIitConfig {
    /// `identity_token_host`: host (and optional port) of the metadata server.
    pub identity_token_host: String,
    /// `service_account`: whose identity token to ask for.
    pub service_account: String,
}

impl GcpIitConfig {
    /// Decodes the plugin's data; unknown keys are refused with their line.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        spire_config::plugin_data::decode(plugin, |r| Self {
            identity_token_host: r
                .non_empty_string("identity_token_host")
                .unwrap_or_else(|| DEFAULT_IDENTITY_TOKEN_HOST.into()),
            service_account: r.non_empty_string("service_account").unwrap_or_else(|| DEFAULT_SERVICE_ACCOUNT.into()),
        })
    }
}

/// Why no token could be had (SPIRE's wording).
#[derive(Debug, thiserror::Error)]
#[error("unable to retrieve valid identity token: {0}")]
pub struct GcpIitError(String);

/// Attests with the metadata server's identity token.
#[derive(Debug)]
pub struct GcpIitAttestor {
    config: GcpIitConfig,
}

impl GcpIitAttestor {
    /// The attestor for `config`.
    pub fn new(config: GcpIitConfig) -> Self {
        Self { config }
    }
}

#[async_trait]
impl NodeAttestor for GcpIitAttestor {
    fn name(&self) -> &str {
        PLUGIN_NAME
    }

    async fn payload(&self) -> Result<Vec<u8>, NodeAttestorError> {
        let path = identity_token_path(&self.config.service_account);
        let (status, body) = http_get(&self.config.identity_token_host, &path, &[("Metadata-Flavor", "Google")])
            .await
            .map_err(|e| NodeAttestorError::plugin(GcpIitError(e)))?;
        if status != 200 {
            return Err(NodeAttestorError::plugin(GcpIitError(format!("unexpected status code: {status}"))));
        }
        Ok(body)
    }
}

/// The largest metadata answer read.
const MAX_BODY: usize = 1 << 20;

/// A plain-HTTP GET of `path` on `host` (`name` or `name:port`, port 80 by default), as the
/// metadata services are reached: the status and body, or Go's `Get "<url>": <cause>`.
pub(crate) async fn http_get(host: &str, path: &str, headers: &[(&str, &str)]) -> Result<(u16, Vec<u8>), String> {
    let url = format!("http://{host}{path}");
    let fail = |e: String| format!("Get {url:?}: {e}");
    let authority = if host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) && !host.ends_with(']') {
        host.to_owned()
    } else {
        format!("{host}:80")
    };
    let exchange = async {
        let stream =
            tokio::net::TcpStream::connect(&authority).await.map_err(|e| format!("dial tcp {authority}: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut request = hyper::Request::get(path).header(hyper::header::HOST, host);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_BODY).collect().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((status, body.to_bytes().to_vec()))
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| fail("timeout awaiting response".into()))?
        .map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spire_testkit::cloud::{Reply, StandIn};
    use std::sync::Arc;

    fn plugin(data: &str) -> PluginConfig {
        PluginConfig::built_in("NodeAttestor", PLUGIN_NAME, data).unwrap()
    }

    #[test]
    fn defaults_are_spires() {
        let c = GcpIitConfig::from_plugin(&plugin("")).unwrap();
        assert_eq!(
            (c.identity_token_host.as_str(), c.service_account.as_str()),
            ("metadata.google.internal", "default")
        );
        assert!(GcpIitConfig::from_plugin(&plugin("nope = 1")).is_err());
    }

    #[tokio::test]
    async fn asks_the_metadata_server_as_spire_does() {
        let server = StandIn::start(
            "127.0.0.1:0",
            Arc::new(|r: &spire_testkit::cloud::Received| {
                if r.header("metadata-flavor") == Some("Google") {
                    Reply::text("the.token.jwt")
                } else {
                    Reply::status(403, "no")
                }
            }),
        )
        .await;
        let config = GcpIitConfig { identity_token_host: server.addr.to_string(), service_account: "sa@p".into() };
        assert_eq!(GcpIitAttestor::new(config).payload().await.unwrap(), b"the.token.jwt");
        assert_eq!(
            server.received()[0].path_and_query,
            "/computeMetadata/v1/instance/service-accounts/sa@p/identity?audience=spire-gcp-node-attestor&format=full"
        );
        let bad =
            StandIn::start("127.0.0.1:0", Arc::new(|_: &spire_testkit::cloud::Received| Reply::status(404, "x"))).await;
        let config = GcpIitConfig { identity_token_host: bad.addr.to_string(), service_account: "default".into() };
        let err = GcpIitAttestor::new(config).payload().await.unwrap_err();
        assert_eq!(err.to_string(), "unable to retrieve valid identity token: unexpected status code: 404");
    }
}
