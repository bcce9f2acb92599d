//! `workload_api`: FetchJWTBundles of the SPIFFE Workload API, keeping the configured trust
//! domain's JWKS.

use std::path::Path;

use serde::Deserialize;
use spire_identity::TrustDomain;
use spire_identity::jwk::Jwk;
use spire_proto::workload::JwtBundlesRequest;
use spire_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use tonic::transport::Channel;

use super::{SourceError, authority_jwk};

/// The Workload API client.
#[derive(Debug)]
pub(super) struct WorkloadApi {
    client: SpiffeWorkloadApiClient<Channel>,
    trust_domain: TrustDomain,
}

impl WorkloadApi {
    pub(super) fn new(socket_path: &Path, trust_domain: TrustDomain) -> Self {
        Self { client: SpiffeWorkloadApiClient::new(super::unix_channel::connect_lazy(socket_path)), trust_domain }
    }

    /// The first message of the stream, as go-spiffe's `FetchJWTBundles` reads it.
    pub(super) async fn fetch(&mut self) -> Result<Vec<Jwk>, SourceError> {
        let mut request = tonic::Request::new(JwtBundlesRequest {});
        request.metadata_mut().insert("workload.spiffe.io", tonic::metadata::MetadataValue::from_static("true"));
        let mut stream = self.client.fetch_jwt_bundles(request).await?.into_inner();
        let response = stream
            .message()
            .await?
            .ok_or_else(|| SourceError::Rpc(tonic::Status::unavailable("stream closed before the first message")))?;
        // Keyed by trust domain ID (`spiffe://example.org`); go-spiffe also accepts the bare name.
        let id = self.trust_domain.id_string();
        let name = self.trust_domain.to_string();
        let jwks = response
            .bundles
            .iter()
            .find(|(k, _)| **k == id || **k == name)
            .map(|(_, v)| v)
            .ok_or_else(|| SourceError::NoBundle(id.clone()))?;
        parse_jwks(jwks)
    }
}

#[derive(Deserialize)]
struct Jwks {
    #[serde(default)]
    keys: Vec<Jwk>,
}

/// A JWT bundle's keys, refused as a whole if one is malformed (go-spiffe's `jwtbundle.Parse`);
/// each is rebuilt from its public key, which drops `use` and any other member, as SPIRE does.
pub(crate) fn parse_jwks(json: &[u8]) -> Result<Vec<Jwk>, SourceError> {
    let doc: Jwks = serde_json::from_slice(json)
        .map_err(|e| SourceError::Parse(format!("jwtbundle: unable to parse JWKS: {e}")))?;
    let mut out = Vec::with_capacity(doc.keys.len());
    for (i, key) in doc.keys.into_iter().enumerate() {
        let kid = key.kid.clone().unwrap_or_default();
        if kid.is_empty() {
            let message = format!("jwtbundle: error adding authority {i} of JWKS: keyID cannot be empty");
            return Err(SourceError::Parse(message));
        }
        let spki = key.to_spki().map_err(|e| SourceError::Parse(format!("jwtbundle: unable to parse JWKS: {e}")))?;
        out.extend(authority_jwk(&kid, &spki));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_keys_are_rebuilt_and_refused_whole() {
        let spki = spire_identity::PrivateKey::generate(spire_identity::KeyType::EcP256).unwrap().public_key_der();
        let mut jwk = Jwk::from_spki(&spki).unwrap();
        jwk.kid = Some("k".into());
        jwk.public_key_use = Some("jwt-svid".into());
        let doc = serde_json::json!({ "keys": [jwk] }).to_string();
        let keys = parse_jwks(doc.as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].public_key_use, None, "use is dropped, as SPIRE does");
        assert_eq!(keys[0].kid.as_deref(), Some("k"));

        jwk.kid = None;
        let doc = serde_json::json!({ "keys": [keys[0].clone(), jwk] }).to_string();
        let e = parse_jwks(doc.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("authority 1 of JWKS: keyID cannot be empty"), "{e}");
        assert!(parse_jwks(b"not json").is_err());
    }
}
