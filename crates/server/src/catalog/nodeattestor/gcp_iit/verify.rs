//! The checks of a `gcp_iit` attestation as functions: the identity token against Google's keys
//! (RS256 only, audience `spire-gcp-node-attestor`, go-jose's time rules), and the selectors.

use std::time::SystemTime;

use spire_attestation::gcp_iit::{AUDIENCE, ComputeEngine, IdentityClaims};
use spire_identity::{SpiffeId, TrustDomain};

use super::compute::Instance;
use super::config::GcpIitConfig;
use super::error::AttestError;
use super::template::Template;
use crate::catalog::nodeattestor::jose::{self, Alg, Expected, PublicKey};

/// Verifies the token (the payload bytes) with `keys` at `now` and returns its Compute Engine
/// facts, refusing as SPIRE's `validateAttestationAndExtractIdentityMetadata` does.
pub fn identity(payload: &[u8], keys: &[PublicKey], now: SystemTime) -> Result<ComputeEngine, AttestError> {
    if payload.is_empty() {
        return Err(AttestError::MissingPayload);
    }
    let token = std::str::from_utf8(payload).map_err(|e| AttestError::Parse(e.to_string()))?;
    let jws = jose::parse(token, &[Alg::RS256]).map_err(|e| AttestError::Parse(e.to_string()))?;
    let claims = jws.verify_with_set(keys).map_err(|e| AttestError::Signature(e.to_string()))?;
    let identity = IdentityClaims::from_json(jws.payload()).map_err(|e| AttestError::Signature(e.to_string()))?;
    jose::validate(&claims, &Expected { any_audience: &[AUDIENCE], time: now, leeway: jose::DEFAULT_LEEWAY })
        .map_err(|e| AttestError::Claims(e.to_string()))?;
    Ok(identity.google.compute_engine)
}

/// The agent ID `template` makes of the token's facts.
pub fn agent_id(trust_domain: &TrustDomain, template: &Template, ce: &ComputeEngine) -> Result<SpiffeId, AttestError> {
    let path = template.execute(ce).map_err(AttestError::AgentId)?;
    trust_domain.id_with_path(&format!("/spire/agent{path}")).map_err(|e| {
        AttestError::AgentId(format!("invalid agent path suffix {}: {e}", spire_cli::flags::go_quote(&path)))
    })
}

/// `project-id:`, `zone:`, `instance-name:`, then with instance metadata `tag:`, `sa:`,
/// `label:<key>:<value>` (allowed keys, sorted) and `metadata:<key>:<value>` (allowed keys, in the
/// instance's order, each value at most `max_metadata_value_size` bytes).
pub fn selectors(
    ce: &ComputeEngine,
    instance: Option<&Instance>,
    config: &GcpIitConfig,
) -> Result<Vec<String>, AttestError> {
    let mut values = vec![
        format!("project-id:{}", ce.project_id),
        format!("zone:{}", ce.zone),
        format!("instance-name:{}", ce.instance_name),
    ];
    let Some(instance) = instance else { return Ok(values) };
    let mut metadata = Vec::new();
    for item in instance.metadata.iter().flat_map(|m| &m.items) {
        if !config.allowed_metadata_keys.contains(&item.key) {
            continue;
        }
        let value = item.value.clone().unwrap_or_default();
        if value.len() > config.max_metadata_value_size {
            return Err(AttestError::MetadataTooLarge {
                key: item.key.clone(),
                len: value.len(),
                max: config.max_metadata_value_size,
            });
        }
        metadata.push(format!("metadata:{}:{value}", item.key));
    }
    values.extend(instance.tags.iter().flat_map(|t| &t.items).map(|t| format!("tag:{t}")));
    values.extend(instance.service_accounts.iter().map(|sa| format!("sa:{}", sa.email)));
    values.extend(
        instance
            .labels
            .iter()
            .filter(|(k, _)| config.allowed_label_keys.contains(*k))
            .map(|(k, v)| format!("label:{k}:{v}")),
    );
    values.extend(metadata);
    Ok(values)
}
