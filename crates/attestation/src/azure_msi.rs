//! `azure_msi`: the agent sends `{"token": "<JWT>"}`, the access token the Azure instance metadata
//! service (IMDS) issued to the VM's managed identity for the configured resource; the server
//! checks it against the tenant's published keys and resolves the VM through Azure Resource
//! Manager. No challenge follows. This module holds SPIRE's `azure` package's shapes: the payload,
//! the claims the server reads, the IMDS token and instance answers.

use serde::{Deserialize, Serialize};

/// The attestation type and plugin name.
pub const PLUGIN_NAME: &str = "azure_msi";

/// The resource the token is asked for by default (the agent's `resource_id`, a tenant's
/// `resource_id` on the server): Azure Resource Manager.
pub const DEFAULT_RESOURCE_ID: &str = "https://management.azure.com/";

/// SPIRE's default `agent_path_template`.
pub const DEFAULT_AGENT_PATH_TEMPLATE: &str = "/{{ .PluginName }}/{{ .TenantID }}/{{ .PrincipalID }}";

/// The instance metadata service's address, hard-coded in SPIRE.
pub const IMDS_HOST: &str = "169.254.169.254";

/// The IMDS token path and query for `resource`, as SPIRE asks (api-version 2018-02-01).
pub fn token_path(resource: &str) -> String {
    format!("/metadata/identity/oauth2/token?api-version=2018-02-01&resource={}", query_escape(resource))
}

/// The IMDS instance metadata path and query SPIRE's server asks at configuration time.
pub const INSTANCE_PATH: &str = "/metadata/instance?api-version=2017-08-01&format=json";

/// Go's `url.QueryEscape`: unreserved bytes kept, space as `+`, the rest `%XX`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The payload (SPIRE's `azure.MSIAttestationData`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttestationData {
    /// The managed identity's access token.
    pub token: String,
}

/// Why a JSON document is not of the expected shape.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(#[from] serde_json::Error);

impl AttestationData {
    /// The payload bytes.
    pub fn to_payload(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a string always serializes")
    }

    /// Reads a payload; a missing token is empty (the server names it).
    pub fn from_payload(payload: &[u8]) -> Result<Self, JsonError> {
        Ok(serde_json::from_slice(payload)?)
    }
}

/// The claims the server reads past the registered ones (SPIRE's `azure.MSITokenClaims`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenClaims {
    /// `tid`: the tenant ID.
    pub tid: String,
    /// `sub`: the managed identity's principal (object) ID.
    pub sub: String,
}

impl TokenClaims {
    /// Reads a verified token's JSON claims set.
    pub fn from_json(claims: &[u8]) -> Result<Self, JsonError> {
        Ok(serde_json::from_slice(claims)?)
    }
}

/// IMDS's token answer; only `access_token` is read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct TokenResponse {
    /// The token.
    pub access_token: String,
}

impl TokenResponse {
    /// Reads IMDS's answer.
    pub fn from_json(body: &[u8]) -> Result<Self, JsonError> {
        Ok(serde_json::from_slice(body)?)
    }
}

/// IMDS's instance answer; only `compute` is read (SPIRE's `azure.InstanceMetadata`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct InstanceMetadata {
    /// The VM's facts.
    pub compute: ComputeMetadata,
}

/// The `compute` member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ComputeMetadata {
    /// The VM's name.
    pub name: String,
    /// Its subscription.
    pub subscription_id: String,
    /// Its resource group.
    pub resource_group_name: String,
}

impl InstanceMetadata {
    /// Reads IMDS's answer.
    pub fn from_json(body: &[u8]) -> Result<Self, JsonError> {
        Ok(serde_json::from_slice(body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip_with_spire_field_name() {
        let d = AttestationData { token: "a.b.c".into() };
        assert_eq!(d.to_payload(), br#"{"token":"a.b.c"}"#);
        assert_eq!(AttestationData::from_payload(&d.to_payload()).unwrap(), d);
        assert_eq!(AttestationData::from_payload(b"{}").unwrap().token, "");
        assert!(AttestationData::from_payload(b"nope").is_err());
    }

    #[test]
    fn imds_shapes() {
        assert_eq!(
            token_path(DEFAULT_RESOURCE_ID),
            "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F"
        );
        let t = TokenResponse::from_json(br#"{"access_token":"x","expires_in":"3599"}"#).unwrap();
        assert_eq!(t.access_token, "x");
        let m = InstanceMetadata::from_json(
            br#"{"compute":{"name":"vm","subscriptionId":"s","resourceGroupName":"rg","location":"x"}}"#,
        )
        .unwrap();
        assert_eq!((m.compute.name.as_str(), m.compute.subscription_id.as_str()), ("vm", "s"));
        let c = TokenClaims::from_json(br#"{"tid":"t","sub":"p","aud":"x"}"#).unwrap();
        assert_eq!((c.tid.as_str(), c.sub.as_str()), ("t", "p"));
    }
}
