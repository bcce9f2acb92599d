//! Azure AD's signing keys, as SPIRE's `jwtutil.CachingKeySetProvider` over an `OIDCIssuer` gets
//! them: the issuer's `/.well-known/openid-configuration` names `jwks_uri`, whose JWKS is kept for
//! an hour; a failed refresh keeps the old set (only a first failure is an error).

use std::time::{Duration, Instant};

use spire_identity::jwk::Jwk;
use tokio::sync::Mutex;

use crate::catalog::nodeattestor::cloud_http;
use crate::catalog::nodeattestor::jose::PublicKey;

/// How long a key set is used before it is fetched again (SPIRE's `keySetRefreshInterval`).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(3600);

/// The cached key set of one issuer.
#[derive(Debug)]
pub struct IssuerKeys {
    issuer: String,
    cache: Mutex<Option<(Vec<PublicKey>, Instant)>>,
}

impl IssuerKeys {
    /// Keys of `issuer`, fetched at first use.
    pub fn new(issuer: String) -> Self {
        Self { issuer, cache: Mutex::new(None) }
    }

    /// The keys, fetched anew after [`REFRESH_INTERVAL`].
    pub async fn get(&self) -> Result<Vec<PublicKey>, String> {
        let mut cache = self.cache.lock().await;
        if let Some((keys, at)) = cache.as_ref()
            && at.elapsed() < REFRESH_INTERVAL
        {
            return Ok(keys.clone());
        }
        match self.fetch().await {
            Ok(keys) => {
                *cache = Some((keys.clone(), Instant::now()));
                Ok(keys)
            }
            Err(e) => match cache.as_ref() {
                Some((keys, _)) => {
                    tracing::warn!(error = %e, "Unable to refresh key set");
                    Ok(keys.clone())
                }
                None => Err(e),
            },
        }
    }

    async fn fetch(&self) -> Result<Vec<PublicKey>, String> {
        let config_url = well_known(&self.issuer)?;
        let response = cloud_http::get(&config_url, &[]).await.map_err(|e| format!("Get {config_url:?}: {e}"))?;
        if response.status != 200 {
            return Err(format!("unexpected status code {}: {}", response.status, response.body_start()));
        }
        let jwks_uri = jwks_uri(&response.body)?;
        let response = cloud_http::get(&jwks_uri, &[]).await.map_err(|e| format!("Get {jwks_uri:?}: {e}"))?;
        if response.status != 200 {
            return Err(format!("unexpected status code {}: {}", response.status, response.body_start()));
        }
        parse_jwks(&response.body)
    }
}

/// The issuer URL with `/.well-known/openid-configuration` joined to its path (Go's `path.Join`).
fn well_known(issuer: &str) -> Result<String, String> {
    let mut url = url::Url::parse(issuer).map_err(|e| e.to_string())?;
    let joined = format!("{}/.well-known/openid-configuration", url.path().trim_end_matches('/'));
    url.set_path(&joined);
    Ok(url.to_string())
}

/// `jwks_uri` of an OpenID configuration document (untrusted input; fuzzed).
pub fn jwks_uri(body: &[u8]) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default)]
        jwks_uri: String,
    }
    let config: Config = serde_json::from_slice(body).map_err(|e| format!("failed to decode configuration: {e}"))?;
    if config.jwks_uri.is_empty() {
        return Err("configuration missing JWKS URI".into());
    }
    Ok(config.jwks_uri)
}

/// A JWKS's keys; keys of types we cannot use are skipped, as go-jose keeps them unusable
/// (untrusted input; fuzzed).
pub fn parse_jwks(body: &[u8]) -> Result<Vec<PublicKey>, String> {
    #[derive(serde::Deserialize)]
    struct Set {
        #[serde(default)]
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(body).map_err(|e| format!("failed to decode key set: {e}"))?;
    let mut keys = Vec::new();
    for value in set.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else { continue };
        let Ok(spki_der) = jwk.to_spki() else { continue };
        keys.push(PublicKey { kid: jwk.kid.unwrap_or_default(), spki_der });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_documents() {
        assert_eq!(
            well_known("https://login.microsoftonline.com/common/").unwrap(),
            "https://login.microsoftonline.com/common/.well-known/openid-configuration"
        );
        assert_eq!(well_known("http://127.0.0.1:9").unwrap(), "http://127.0.0.1:9/.well-known/openid-configuration");
        assert_eq!(jwks_uri(br#"{"jwks_uri":"https://x/keys"}"#).unwrap(), "https://x/keys");
        assert_eq!(jwks_uri(b"{}").unwrap_err(), "configuration missing JWKS URI");
        assert!(parse_jwks(b"[").unwrap_err().starts_with("failed to decode key set"));
        assert_eq!(parse_jwks(br#"{"keys":[{"kty":"oct","k":"AA"}]}"#).unwrap(), []);
    }
}
