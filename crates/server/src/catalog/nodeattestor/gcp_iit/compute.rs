//! `use_instance_metadata`: Compute Engine's `instances.get` (REST, JSON) for the instance the
//! token names, authorised as SPIRE's Google client is: the key of `service_account_file` (or of
//! `GOOGLE_APPLICATION_CREDENTIALS`) signs a JWT-bearer assertion exchanged at the key's
//! `token_uri`, and without a key file the metadata server's token of the instance the server runs
//! on is used.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use std::collections::BTreeMap;

use crate::catalog::nodeattestor::cloud_http;

/// The OAuth scope asked for.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// What the selectors read of an `instances.get` answer (Compute Engine's `Instance` resource).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Instance {
    /// `tags`.
    pub tags: Option<Tags>,
    /// `serviceAccounts`.
    pub service_accounts: Vec<ServiceAccount>,
    /// `labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata`.
    pub metadata: Option<Metadata>,
}

/// `tags`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Tags {
    /// The network tags.
    pub items: Vec<String>,
}

/// One of `serviceAccounts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ServiceAccount {
    /// The account's e-mail.
    pub email: String,
}

/// `metadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Metadata {
    /// The key/value items.
    pub items: Vec<MetadataItem>,
}

/// One metadata item; the value may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct MetadataItem {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Option<String>,
}

impl Instance {
    /// Reads an `instances.get` answer (untrusted input; fuzzed).
    pub fn from_json(body: &[u8]) -> Result<Self, String> {
        // An object only: serde would also take a struct from an array, Go's decoder does not.
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(body).map_err(|e| e.to_string())?;
        serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| e.to_string())
    }
}

/// A service account key file (`"type": "service_account"`).
#[derive(Debug, Clone, Deserialize)]
struct KeyFile {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: String,
    #[serde(default = "default_token_uri")]
    token_uri: String,
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".into()
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    access_token: String,
}

/// `instances.get` of `project`/`zone`/`name` at `endpoint` (ending in `/`).
pub async fn fetch_instance(
    endpoint: &str,
    service_account_file: Option<&str>,
    project: &str,
    zone: &str,
    name: &str,
) -> Result<Instance, String> {
    let token = access_token(service_account_file)
        .await
        .map_err(|e| format!("failed to create compute service client: {e}"))?;
    let url = format!(
        "{endpoint}projects/{}/zones/{}/instances/{}?alt=json&prettyPrint=false",
        path_escape(project),
        path_escape(zone),
        path_escape(name)
    );
    let auth = format!("Bearer {token}");
    let response = cloud_http::get(&url, &[("authorization", &auth)])
        .await
        .map_err(|e| format!("failed to fetch instance metadata: Get {url:?}: {e}"))?;
    if response.status != 200 {
        return Err(format!(
            "failed to fetch instance metadata: googleapi: got HTTP response code {} with body: {}",
            response.status,
            response.body_start()
        ));
    }
    Instance::from_json(&response.body).map_err(|e| format!("failed to fetch instance metadata: {e}"))
}

/// An OAuth access token for the Compute API.
async fn access_token(service_account_file: Option<&str>) -> Result<String, String> {
    let file = service_account_file.map(str::to_owned).or_else(|| std::env::var("GOOGLE_APPLICATION_CREDENTIALS").ok());
    let Some(file) = file else { return metadata_token().await };
    let text = std::fs::read(&file).map_err(|e| format!("open {file}: {e}"))?;
    let key: KeyFile = serde_json::from_slice(&text).map_err(|e| format!("invalid credentials file {file}: {e}"))?;
    let assertion = assertion(&key, SystemTime::now())?;
    let body =
        cloud_http::form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &assertion)]);
    let response = cloud_http::send(
        hyper::Method::POST,
        &key.token_uri,
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(body.into_bytes()),
    )
    .await
    .map_err(|e| format!("oauth2: cannot fetch token: {e}"))?;
    if response.status != 200 {
        return Err(format!("oauth2: cannot fetch token: {}\nResponse: {}", response.status, response.body_start()));
    }
    let answer: TokenAnswer =
        serde_json::from_slice(&response.body).map_err(|e| format!("oauth2: cannot fetch token: {e}"))?;
    if answer.access_token.is_empty() {
        return Err("oauth2: server response missing access_token".into());
    }
    Ok(answer.access_token)
}

/// The token of the instance the server runs on, from its metadata server (`GCE_METADATA_HOST`
/// overrides the host, as in Google's libraries).
async fn metadata_token() -> Result<String, String> {
    let host = std::env::var("GCE_METADATA_HOST").unwrap_or_else(|_| "metadata.google.internal".into());
    let url = format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/token");
    let response = cloud_http::get(&url, &[("metadata-flavor", "Google")])
        .await
        .map_err(|e| format!("google: could not find default credentials: {e}"))?;
    if response.status != 200 {
        return Err(format!("google: could not find default credentials: status {}", response.status));
    }
    let answer: TokenAnswer = serde_json::from_slice(&response.body).map_err(|e| e.to_string())?;
    Ok(answer.access_token)
}

/// The RS256 JWT-bearer assertion (RFC 7523) of a key file.
fn assertion(key: &KeyFile, now: SystemTime) -> Result<String, String> {
    let iat = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": key.private_key_id});
    let claims = serde_json::json!({"iss": key.client_email, "scope": SCOPE, "aud": key.token_uri, "iat": iat, "exp": iat + 3600});
    let signed =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let der = pem_der(&key.private_key).ok_or("private key should be a PEM or plain PKCS1 or PKCS8")?;
    let pair = RsaKeyPair::from_pkcs8(&der)
        .or_else(|_| RsaKeyPair::from_der(&der))
        .map_err(|e| format!("private key should be a PEM or plain PKCS1 or PKCS8; parse error: {e}"))?;
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), signed.as_bytes(), &mut signature).map_err(|e| e.to_string())?;
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

fn pem_der(text: &str) -> Option<Vec<u8>> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start..];
    let body_start = rest.find('\n')? + 1;
    let end = rest.find("-----END ")?;
    let b64: String = rest.get(body_start..end)?.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// Go's `url.PathEscape` for one path segment.
fn path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'$'
            | b'&'
            | b'+'
            | b','
            | b':'
            | b'='
            | b'@' => out.push(char::from(b)),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_instance_resource() {
        let i = Instance::from_json(
            br#"{"kind":"compute#instance","name":"vm","tags":{"items":["web"],"fingerprint":"x"},
            "serviceAccounts":[{"email":"sa@p.iam.gserviceaccount.com","scopes":[]}],
            "labels":{"env":"prod"},"metadata":{"items":[{"key":"role","value":"db"},{"key":"empty"}]}}"#,
        )
        .unwrap();
        assert_eq!(i.tags.unwrap().items, ["web"]);
        assert_eq!(i.service_accounts[0].email, "sa@p.iam.gserviceaccount.com");
        assert_eq!(i.labels["env"], "prod");
        let items = i.metadata.unwrap().items;
        assert_eq!((items[0].value.as_deref(), items[1].value.as_deref()), (Some("db"), None));
        assert!(Instance::from_json(b"[]").is_err());
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(path_escape("us-central1-a"), "us-central1-a");
        assert_eq!(path_escape("a/b c"), "a%2Fb%20c");
    }
}
