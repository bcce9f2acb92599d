//! `gcp_iit`: the agent sends the instance identity token the GCE metadata server issued for the
//! audience `spire-gcp-node-attestor` in `format=full` (a Google-signed RS256 JWT, sent as the raw
//! payload bytes, no JSON around it); the server checks it against Google's published keys. No
//! challenge follows. This module holds the token's claims as SPIRE's `gcp.IdentityToken` reads
//! them and the metadata server's request shape.

use serde::{Deserialize, Serialize};

/// The attestation type and plugin name.
pub const PLUGIN_NAME: &str = "gcp_iit";

/// The audience the agent asks the metadata server for, and the server requires.
pub const AUDIENCE: &str = "spire-gcp-node-attestor";

/// The metadata server's host name SPIRE's agent uses by default (`identity_token_host`).
pub const DEFAULT_IDENTITY_TOKEN_HOST: &str = "metadata.google.internal";

/// The service account whose identity the agent asks for by default (`service_account`).
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// SPIRE's default `agent_path_template`.
pub const DEFAULT_AGENT_PATH_TEMPLATE: &str = "/{{ .PluginName }}/{{ .ProjectID }}/{{ .InstanceID }}";

/// The metadata server's identity URL (path and query) for `service_account`, as SPIRE's agent
/// builds it: `audience` and `format=full`, in Go's sorted query order.
pub fn identity_token_path(service_account: &str) -> String {
    format!("/computeMetadata/v1/instance/service-accounts/{service_account}/identity?audience={AUDIENCE}&format=full")
}

/// The `google.compute_engine` claim of a `format=full` identity token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ComputeEngine {
    /// The project's ID (a name such as `my-project`).
    pub project_id: String,
    /// The project's number.
    pub project_number: i64,
    /// The instance's zone, such as `us-central1-a`.
    pub zone: String,
    /// The instance's numeric ID, as a string.
    pub instance_id: String,
    /// The instance's name.
    pub instance_name: String,
    /// When the instance was created (Unix seconds).
    pub instance_creation_timestamp: i64,
}

/// The `google` claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Google {
    /// The instance's facts.
    pub compute_engine: ComputeEngine,
}

/// The claims the server reads past the registered ones (`azp`, `google`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IdentityClaims {
    /// The authorized party (the service account's unique ID).
    pub azp: String,
    /// Google's instance claims.
    pub google: Google,
}

/// Why a token's claims could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClaimsError(#[from] serde_json::Error);

impl IdentityClaims {
    /// Reads the JSON claims set of a verified token. Unknown claims are ignored and missing ones
    /// are empty, as Go's `json.Unmarshal` leaves them; a claim of the wrong JSON type is an error.
    pub fn from_json(claims: &[u8]) -> Result<Self, ClaimsError> {
        Ok(serde_json::from_slice(claims)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_claims_google_issues() {
        let json = br#"{"aud":"spire-gcp-node-attestor","azp":"1122","exp":1,"google":{"compute_engine":{
            "instance_creation_timestamp":1700000000,"instance_id":"4711","instance_name":"vm-1",
            "project_id":"proj","project_number":1234,"zone":"us-west1-b"}},"iat":0,"iss":"https://accounts.google.com","sub":"1122"}"#;
        let c = IdentityClaims::from_json(json).unwrap();
        assert_eq!(c.azp, "1122");
        let ce = &c.google.compute_engine;
        assert_eq!((ce.project_id.as_str(), ce.zone.as_str(), ce.instance_id.as_str()), ("proj", "us-west1-b", "4711"));
        assert_eq!(ce.project_number, 1234);
        assert_eq!(IdentityClaims::from_json(b"{}").unwrap(), IdentityClaims::default());
        assert!(IdentityClaims::from_json(br#"{"google":{"compute_engine":{"project_number":"x"}}}"#).is_err());
    }

    #[test]
    fn the_identity_url_is_spire_agents() {
        assert_eq!(
            identity_token_path("default"),
            "/computeMetadata/v1/instance/service-accounts/default/identity?audience=spire-gcp-node-attestor&format=full"
        );
    }
}
