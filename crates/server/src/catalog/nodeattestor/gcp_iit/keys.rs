//! Google's token-signing keys, as SPIRE's `googlePublicKeyRetriever` gets them: a JSON object of
//! key ID to PEM certificate (`https://www.googleapis.com/oauth2/v1/certs`), kept until the
//! answer's `Expires` time and fetched again at the first attestation after it (or every time when
//! there is none).

use std::time::SystemTime;

use tokio::sync::Mutex;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::catalog::nodeattestor::cloud_http;
use crate::catalog::nodeattestor::jose::PublicKey;

/// The cached key set.
#[derive(Debug)]
pub struct GoogleKeys {
    url: String,
    cache: Mutex<Option<(Vec<PublicKey>, Option<SystemTime>)>>,
}

impl GoogleKeys {
    /// Keys from `url`, fetched at first use.
    pub fn new(url: String) -> Self {
        Self { url, cache: Mutex::new(None) }
    }

    /// The keys, fetched anew when none are held or they have expired.
    pub async fn get(&self) -> Result<Vec<PublicKey>, String> {
        let mut cache = self.cache.lock().await;
        if let Some((keys, Some(expiry))) = cache.as_ref()
            && SystemTime::now() <= *expiry
        {
            return Ok(keys.clone());
        }
        let response = cloud_http::get(&self.url, &[]).await.map_err(|e| format!("Get {:?}: {e}", self.url))?;
        if response.status != 200 {
            return Err(format!("unexpected status code: {}", response.status));
        }
        let keys = parse_certs(&response.body)?;
        let expiry = response.expires.as_deref().and_then(httpdate_parse);
        *cache = Some((keys.clone(), expiry));
        Ok(keys)
    }
}

/// Reads Google's `{kid: PEM certificate}` document (untrusted input; fuzzed).
pub fn parse_certs(body: &[u8]) -> Result<Vec<PublicKey>, String> {
    let map: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(body).map_err(|e| format!("unable to unmarshal certificate response: {e}"))?;
    let mut keys = Vec::with_capacity(map.len());
    for (kid, pem) in map {
        let der = pem_block(&pem).ok_or("unable to unmarshal certificate response: malformed PEM block")?;
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|_| "unable to unmarshal certificate response: malformed certificate PEM".to_owned())?;
        keys.push(PublicKey { kid, spki_der: cert.public_key().raw.to_vec() });
    }
    Ok(keys)
}

/// The first PEM block's DER, as Go's `pem.Decode`.
fn pem_block(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start..];
    let body_start = rest.find('\n')? + 1;
    let end = rest.find("-----END ")?;
    let b64: String = rest.get(body_start..end)?.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// An `Expires` header in Go's layout `Mon, 2 Jan 2006 15:04:05 MST` (RFC 1123); `None` when it
/// does not parse, as SPIRE then keeps no expiry.
fn httpdate_parse(text: &str) -> Option<SystemTime> {
    let ts = jiff::fmt::rfc2822::parse(text).ok()?;
    Some(SystemTime::from(ts.timestamp()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_of_the_certificate_document() {
        assert!(parse_certs(b"[]").unwrap_err().starts_with("unable to unmarshal certificate response:"));
        assert_eq!(
            parse_certs(br#"{"k":"nope"}"#).unwrap_err(),
            "unable to unmarshal certificate response: malformed PEM block"
        );
        assert_eq!(
            parse_certs(b"{\"k\":\"-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\\n\"}").unwrap_err(),
            "unable to unmarshal certificate response: malformed certificate PEM"
        );
        assert_eq!(parse_certs(b"{}").unwrap(), []);
    }

    #[test]
    fn expires_headers_as_google_sends_them() {
        let t = httpdate_parse("Fri, 04 Dec 2026 21:00:00 GMT").unwrap();
        assert_eq!(t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(), 1_796_418_000);
        assert!(httpdate_parse("soon").is_none());
    }
}
