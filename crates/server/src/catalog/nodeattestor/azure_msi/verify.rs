//! The checks of an `azure_msi` attestation as functions: the payload, the token's signature
//! against the tenant keys, its claims, and the resource IDs the resolver reads.

use std::time::{Duration, SystemTime};

use spire_attestation::azure_msi::{AttestationData, TokenClaims};
use spire_identity::{SpiffeId, TrustDomain};

use super::error::AttestError;
use super::template::{Template, TemplateData};
use crate::catalog::nodeattestor::jose::{self, Alg, Expected, Jws, PublicKey};

/// SPIRE's leeway on the token's times.
pub const TOKEN_LEEWAY: Duration = Duration::from_secs(300);

/// The payload's token, parsed (not yet verified).
pub fn parse_payload(payload: &[u8]) -> Result<String, AttestError> {
    if payload.is_empty() {
        return Err(AttestError::MissingPayload);
    }
    let data = AttestationData::from_payload(payload).map_err(|e| AttestError::BadPayload(e.to_string()))?;
    if data.token.is_empty() {
        return Err(AttestError::MissingToken);
    }
    Ok(data.token)
}

/// Verifies `token` with the key of its `kid` and returns the JWS and its claims, refusing as
/// SPIRE does (the claims' times and audience are checked later, once the tenant is known).
pub fn verify_token(
    token: &str,
    keys: &[PublicKey],
) -> Result<(Jws, serde_json::Map<String, serde_json::Value>, TokenClaims), AttestError> {
    let jws = jose::parse(token, Alg::ALL).map_err(|e| AttestError::Parse(e.to_string()))?;
    if jws.kid().is_empty() {
        return Err(AttestError::MissingKeyId);
    }
    let key =
        keys.iter().find(|k| k.kid == jws.kid()).ok_or_else(|| AttestError::UnknownKeyId(jws.kid().to_owned()))?;
    let claims = jws.verify_with(&key.spki_der).map_err(|e| AttestError::Verify(e.to_string()))?;
    let typed = TokenClaims::from_json(jws.payload()).map_err(|e| AttestError::Verify(e.to_string()))?;
    if typed.tid.is_empty() {
        return Err(AttestError::MissingTenant);
    }
    if typed.sub.is_empty() {
        return Err(AttestError::MissingSubject);
    }
    Ok((jws, claims, typed))
}

/// go-jose's claim validation with the tenant's resource as the audience.
pub fn validate_claims(
    claims: &serde_json::Map<String, serde_json::Value>,
    resource_id: &str,
    now: SystemTime,
) -> Result<(), AttestError> {
    jose::validate(claims, &Expected { any_audience: &[resource_id], time: now, leeway: TOKEN_LEEWAY })
        .map_err(|e| AttestError::Claims(e.to_string()))
}

/// The agent ID `template` makes of the token.
pub fn agent_id(
    trust_domain: &TrustDomain,
    template: &Template,
    claims: &TokenClaims,
) -> Result<SpiffeId, AttestError> {
    let data = TemplateData { tenant_id: claims.tid.clone(), principal_id: claims.sub.clone() };
    let path = template.execute(&data).map_err(AttestError::AgentId)?;
    trust_domain.id_with_path(&format!("/spire/agent{path}")).map_err(|e| {
        AttestError::AgentId(format!("invalid agent path suffix {}: {e}", spire_cli::flags::go_quote(&path)))
    })
}

/// Matches `/subscriptions/<s>/resourceGroups/<g>/providers/<provider>/<n1>[/<kind2>/<n2>]`,
/// each name one or more characters other than `/`, as SPIRE's regular expressions.
fn parse_id<'a>(id: &'a str, provider: &str, sub_kind: Option<&str>) -> Option<Vec<&'a str>> {
    let rest = id.strip_prefix("/subscriptions/")?;
    let (subscription, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("resourceGroups/")?;
    let (group, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("providers/")?.strip_prefix(provider)?.strip_prefix('/')?;
    let mut out = vec![group];
    match sub_kind {
        None => out.push(rest),
        Some(kind) => {
            let (name, rest) = rest.split_once('/')?;
            let sub = rest.strip_prefix(kind)?.strip_prefix('/')?;
            out.extend([name, sub]);
        }
    }
    let ok = !subscription.is_empty() && out.iter().all(|p| !p.is_empty() && !p.contains('/'));
    ok.then_some(out)
}

/// `(group, name)` of a VM ID.
pub fn parse_vm_id(id: &str) -> Result<(String, String), AttestError> {
    parse_id(id, "Microsoft.Compute/virtualMachines", None)
        .map(|p| (p[0].to_owned(), p[1].to_owned()))
        .ok_or_else(|| AttestError::MalformedId(format!("malformed virtual machine ID {id:?}")))
}

/// `(group, name)` of a network interface ID.
pub fn parse_nic_id(id: &str) -> Result<(String, String), AttestError> {
    parse_id(id, "Microsoft.Network/networkInterfaces", None)
        .map(|p| (p[0].to_owned(), p[1].to_owned()))
        .ok_or_else(|| AttestError::MalformedId(format!("malformed network interface ID {id:?}")))
}

/// `(group, name)` of a network security group ID.
pub fn parse_nsg_id(id: &str) -> Result<(String, String), AttestError> {
    parse_id(id, "Microsoft.Network/networkSecurityGroups", None)
        .map(|p| (p[0].to_owned(), p[1].to_owned()))
        .ok_or_else(|| AttestError::MalformedId(format!("malformed network security group ID {id:?}")))
}

/// `(group, network, subnet)` of a subnet ID.
pub fn parse_subnet_id(id: &str) -> Result<(String, String, String), AttestError> {
    parse_id(id, "Microsoft.Network/virtualNetworks", Some("subnets"))
        .map(|p| (p[0].to_owned(), p[1].to_owned(), p[2].to_owned()))
        .ok_or_else(|| AttestError::MalformedId(format!("malformed virtual network subnet ID {id:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids_as_spires_expressions() {
        let vm = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1";
        assert_eq!(parse_vm_id(vm).unwrap(), ("rg".into(), "vm1".into()));
        assert!(parse_vm_id(&format!("{vm}/x")).is_err());
        assert_eq!(
            parse_vm_id("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/")
                .unwrap_err()
                .to_string(),
            "malformed virtual machine ID \"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/\""
        );
        let subnet = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/net/subnets/sub";
        assert_eq!(parse_subnet_id(subnet).unwrap(), ("rg".into(), "net".into(), "sub".into()));
        let nsg = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg";
        assert_eq!(parse_nsg_id(nsg).unwrap(), ("rg".into(), "nsg".into()));
        assert!(parse_nic_id(nsg).is_err());
        assert!(parse_payload(b"").is_err());
        assert_eq!(parse_payload(b"{}").unwrap_err(), AttestError::MissingToken);
    }
}
