//! Protobuf types of the server APIs to and from the datastore's records, validating on the way in
//! with messages that say what to fix (SPIRE's wording where operators and scripts rely on it).

use spire_datastore::{AttestedNode, RegistrationEntry};
use spire_identity::{Selector, SpiffeId, TrustDomain};
use spire_proto::spire::api::types as pb;

/// Longest entry hint SPIRE accepts.
pub const HINT_MAX_LEN: usize = 1024;

/// A `SPIFFEID` message to a SPIFFE ID.
pub fn spiffe_id(id: Option<&pb::Spiffeid>) -> Result<SpiffeId, String> {
    let id = id.ok_or("request must specify SPIFFE ID")?;
    let td = TrustDomain::parse(&id.trust_domain).map_err(|e| e.to_string())?;
    if !id.path.is_empty() && !id.path.starts_with('/') {
        return Err("path must have a leading slash".into());
    }
    td.id_with_path(&id.path).map_err(|e| e.to_string())
}

/// A SPIFFE ID to its `SPIFFEID` message.
pub fn spiffe_id_proto(id: &SpiffeId) -> pb::Spiffeid {
    pb::Spiffeid { trust_domain: id.trust_domain().to_string(), path: id.path().to_owned() }
}

/// A `Selector` message to a selector, with SPIRE's messages.
pub fn selector(s: &pb::Selector) -> Result<Selector, String> {
    if s.r#type.is_empty() {
        return Err("missing selector type".into());
    }
    if s.r#type.contains(':') {
        return Err("selector type contains ':'".into());
    }
    if s.value.is_empty() {
        return Err("missing selector value".into());
    }
    Selector::new(s.r#type.clone(), s.value.clone()).map_err(|e| e.to_string())
}

/// Selectors to their messages.
pub fn selectors_proto(selectors: &[Selector]) -> Vec<pb::Selector> {
    selectors.iter().map(|s| pb::Selector { r#type: s.kind.clone(), value: s.value.clone() }).collect()
}

fn dns_name(name: &str) -> Result<(), String> {
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let body = name.strip_prefix("*.").unwrap_or(name);
    if name.is_empty() || name.len() > 253 || !body.split('.').all(valid_label) {
        return Err(format!(
            "invalid DNS name {name:?}: use letters, digits, '-' and '.' (a leading \"*.\" is allowed)"
        ));
    }
    Ok(())
}

/// An `Entry` message to a registration entry. Errors read like SPIRE's
/// (`invalid spiffe ID: ...`, `selector list is empty`...).
pub fn entry(e: &pb::Entry) -> Result<RegistrationEntry, String> {
    let parent_id = spiffe_id(e.parent_id.as_ref()).map_err(|m| format!("invalid parent ID: {m}"))?;
    let id = spiffe_id(e.spiffe_id.as_ref()).map_err(|m| format!("invalid spiffe ID: {m}"))?;
    if id.path().is_empty() {
        return Err(format!("invalid spiffe ID: {id} is a trust domain ID; the entry's SPIFFE ID needs a path"));
    }
    if e.selectors.is_empty() {
        return Err("selector list is empty".into());
    }
    let selectors = e.selectors.iter().map(selector).collect::<Result<Vec<_>, _>>()?;
    let federates_with = e
        .federates_with
        .iter()
        .map(|td| TrustDomain::parse(td).map_err(|m| format!("invalid federated trust domain {td:?}: {m}")))
        .collect::<Result<Vec<_>, _>>()?;
    for name in &e.dns_names {
        dns_name(name)?;
    }
    if e.x509_svid_ttl < 0 {
        return Err(format!(
            "invalid x509_svid_ttl {}: it must be 0 (server default) or more seconds",
            e.x509_svid_ttl
        ));
    }
    if e.jwt_svid_ttl < 0 {
        return Err(format!("invalid jwt_svid_ttl {}: it must be 0 (server default) or more seconds", e.jwt_svid_ttl));
    }
    if e.hint.len() > HINT_MAX_LEN {
        return Err(format!("hint is too long, max length is {HINT_MAX_LEN} characters"));
    }
    if e.store_svid {
        let first = &selectors[0].kind;
        if selectors.iter().any(|s| &s.kind != first) {
            return Err("selector types must be the same when store SVID is enabled".into());
        }
    }
    let mut out = RegistrationEntry::new(id, parent_id, selectors);
    out.id = e.id.clone();
    out.x509_svid_ttl = e.x509_svid_ttl;
    out.jwt_svid_ttl = e.jwt_svid_ttl;
    out.federates_with = federates_with;
    out.admin = e.admin;
    out.downstream = e.downstream;
    out.expires_at = e.expires_at;
    out.dns_names = e.dns_names.clone();
    out.store_svid = e.store_svid;
    out.hint = e.hint.clone();
    if let Some(a) = &e.additional_attributes {
        out.disable_x509_svid_prefetch = a.disable_x509_svid_prefetch;
        out.jwt_svid_include_jti = a.jwt_svid_include_jti;
    }
    Ok(out)
}

/// A registration entry to its message, keeping only the fields of `mask` (all when `None`; the ID
/// always).
pub fn entry_proto(e: &RegistrationEntry, mask: Option<&pb::EntryMask>) -> pb::Entry {
    let all = pb::EntryMask {
        spiffe_id: true,
        parent_id: true,
        selectors: true,
        x509_svid_ttl: true,
        federates_with: true,
        admin: true,
        downstream: true,
        expires_at: true,
        dns_names: true,
        revision_number: true,
        store_svid: true,
        jwt_svid_ttl: true,
        hint: true,
        created_at: true,
        additional_attributes: true,
    };
    let m = mask.unwrap_or(&all);
    pb::Entry {
        id: e.id.clone(),
        spiffe_id: m.spiffe_id.then(|| spiffe_id_proto(&e.spiffe_id)),
        parent_id: m.parent_id.then(|| spiffe_id_proto(&e.parent_id)),
        selectors: if m.selectors { selectors_proto(&e.selectors) } else { Vec::new() },
        x509_svid_ttl: if m.x509_svid_ttl { e.x509_svid_ttl } else { 0 },
        federates_with: if m.federates_with {
            e.federates_with.iter().map(ToString::to_string).collect()
        } else {
            vec![]
        },
        admin: m.admin && e.admin,
        downstream: m.downstream && e.downstream,
        expires_at: if m.expires_at { e.expires_at } else { 0 },
        dns_names: if m.dns_names { e.dns_names.clone() } else { vec![] },
        revision_number: if m.revision_number { e.revision_number } else { 0 },
        store_svid: m.store_svid && e.store_svid,
        jwt_svid_ttl: if m.jwt_svid_ttl { e.jwt_svid_ttl } else { 0 },
        hint: if m.hint { e.hint.clone() } else { String::new() },
        created_at: if m.created_at { e.created_at } else { 0 },
        additional_attributes: m.additional_attributes.then_some(pb::AdditionalAttributes {
            disable_x509_svid_prefetch: e.disable_x509_svid_prefetch,
            jwt_svid_include_jti: e.jwt_svid_include_jti,
        }),
    }
}

/// An attested node to the API's `Agent`, keeping the fields of `mask` (all when `None`).
pub fn agent_proto(n: &AttestedNode, mask: Option<&pb::AgentMask>) -> pb::Agent {
    let all = pb::AgentMask {
        attestation_type: true,
        x509svid_serial_number: true,
        x509svid_expires_at: true,
        selectors: true,
        banned: true,
        can_reattest: true,
        agent_version: true,
    };
    let m = mask.unwrap_or(&all);
    pb::Agent {
        id: Some(spiffe_id_proto(&n.spiffe_id)),
        attestation_type: if m.attestation_type { n.attestation_data_type.clone() } else { String::new() },
        x509svid_serial_number: if m.x509svid_serial_number { n.cert_serial_number.clone() } else { String::new() },
        x509svid_expires_at: if m.x509svid_expires_at { n.cert_not_after } else { 0 },
        selectors: if m.selectors { selectors_proto(&n.selectors) } else { vec![] },
        banned: m.banned && n.is_banned(),
        can_reattest: m.can_reattest && n.can_reattest,
        agent_version: if m.agent_version { n.agent_version.clone() } else { String::new() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(td: &str, path: &str) -> Option<pb::Spiffeid> {
        Some(pb::Spiffeid { trust_domain: td.into(), path: path.into() })
    }

    fn good() -> pb::Entry {
        pb::Entry {
            spiffe_id: id("example.org", "/workload"),
            parent_id: id("example.org", "/spire/agent/x"),
            selectors: vec![pb::Selector { r#type: "unix".into(), value: "uid:1000".into() }],
            ..Default::default()
        }
    }

    #[test]
    fn round_trip() {
        let mut e = good();
        e.dns_names = vec!["web.example.org".into(), "*.example.org".into()];
        e.federates_with = vec!["other.org".into()];
        e.additional_attributes =
            Some(pb::AdditionalAttributes { disable_x509_svid_prefetch: true, jwt_svid_include_jti: false });
        let rec = entry(&e).unwrap();
        let back = entry_proto(&rec, None);
        assert_eq!(back.spiffe_id, e.spiffe_id);
        assert_eq!(back.dns_names, e.dns_names);
        assert_eq!(back.federates_with, e.federates_with);
        assert!(back.additional_attributes.unwrap().disable_x509_svid_prefetch);
    }

    #[test]
    fn bad_input_says_what_to_fix() {
        type Mutation = fn(&mut pb::Entry);
        let cases: Vec<(Mutation, &str)> = vec![
            (|e| e.spiffe_id = None, "invalid spiffe ID: request must specify SPIFFE ID"),
            (|e| e.spiffe_id = id("Example.org", "/w"), "invalid spiffe ID: trust domain characters"),
            (|e| e.spiffe_id = id("example.org", "w"), "invalid spiffe ID: path must have a leading slash"),
            (|e| e.spiffe_id = id("example.org", "/a//b"), "invalid spiffe ID: path cannot contain empty segments"),
            (|e| e.parent_id = id("", "/x"), "invalid parent ID: trust domain is missing"),
            (|e| e.selectors.clear(), "selector list is empty"),
            (|e| e.selectors[0].r#type.clear(), "missing selector type"),
            (|e| e.selectors[0].value.clear(), "missing selector value"),
            (|e| e.x509_svid_ttl = -1, "invalid x509_svid_ttl -1"),
            (|e| e.dns_names = vec!["bad name".into()], "invalid DNS name \"bad name\""),
            (|e| e.hint = "h".repeat(1025), "hint is too long"),
            (|e| e.federates_with = vec!["BAD".into()], "invalid federated trust domain \"BAD\""),
        ];
        for (mutate, want) in cases {
            let mut e = good();
            mutate(&mut e);
            let err = entry(&e).unwrap_err();
            assert!(err.starts_with(want), "{want:?} vs {err:?}");
        }
    }
}
