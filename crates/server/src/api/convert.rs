//! Protobuf types of the server APIs to and from the datastore's records, validating on the way in
//! with messages that say what to fix (SPIRE's wording where operators and scripts rely on it).

use spire_datastore::{AttestedNode, RegistrationEntry};
use spire_identity::{Selector, SpiffeId, TrustDomain};
use spire_proto::spire::api::types as pb;

use super::agent::workload_id;
use super::dns;

/// Longest entry hint SPIRE accepts.
pub const HINT_MAX_LEN: usize = 1024;

/// A `SPIFFEID` message to a SPIFFE ID (SPIRE's `idutil.IDFromProto`), refused with go-spiffe's
/// wording as SPIRE refuses it.
pub fn spiffe_id(id: Option<&pb::Spiffeid>) -> Result<SpiffeId, String> {
    let id = id.ok_or("request must specify SPIFFE ID")?;
    let td = go_trust_domain(&id.trust_domain)?;
    td.id_with_path(&id.path).map_err(|e| e.go_spiffe_message())
}

/// go-spiffe's `TrustDomainFromString`: a bare name, or the trust domain of a SPIFFE ID (whose path,
/// if any, is ignored), with go-spiffe's messages.
pub fn go_trust_domain(text: &str) -> Result<TrustDomain, String> {
    if text.contains(":/") {
        return SpiffeId::parse(text).map(|id| id.trust_domain().clone()).map_err(|e| e.go_spiffe_message());
    }
    TrustDomain::parse(text).map_err(|e| e.go_spiffe_message())
}

/// A member of trust domain `td`, not the trust domain itself (SPIRE's `VerifyTrustDomainMemberID`).
fn member_id(td: &TrustDomain, id: &SpiffeId) -> Result<(), String> {
    if !id.is_member_of(td) {
        return Err(format!("\"{id}\" is not a member of trust domain \"{td}\""));
    }
    if id.path().is_empty() {
        return Err(format!("\"{id}\" is not a member of trust domain \"{td}\"; path is empty"));
    }
    Ok(())
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

/// An `Entry` message of trust domain `td` to a registration entry: SPIRE's
/// `ProtoToRegistrationEntry`, its checks in its order and with its messages (scripts match on them,
/// and `spire-server entry create` prints them). What SPIRE's datastore checks next is
/// [`entry_datastore_checks`].
pub fn entry(e: &pb::Entry, td: &TrustDomain) -> Result<RegistrationEntry, String> {
    let parent_id = spiffe_id(e.parent_id.as_ref())
        .and_then(|id| member_id(td, &id).map(|()| id))
        .map_err(|m| format!("invalid parent ID: {m}"))?;
    let id = spiffe_id(e.spiffe_id.as_ref())
        .and_then(|id| workload_id(td, &id).map(|()| id))
        .map_err(|m| format!("invalid spiffe ID: {m}"))?;
    for name in &e.dns_names {
        dns::validate_label(name).map_err(|m| format!("invalid DNS name: {m}"))?;
    }
    let federates_with = e
        .federates_with
        .iter()
        .map(|td| go_trust_domain(td).map_err(|m| format!("invalid federated trust domain: {m}")))
        .collect::<Result<Vec<_>, _>>()?;
    if e.selectors.is_empty() {
        return Err("selector list is empty".into());
    }
    let selectors = e.selectors.iter().map(selector).collect::<Result<Vec<_>, _>>()?;
    if e.hint.len() > HINT_MAX_LEN {
        return Err(format!("hint is too long, max length is {HINT_MAX_LEN} characters"));
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

/// Longest entry ID SPIRE's datastore stores.
pub const ENTRY_ID_MAX_LEN: usize = 255;

/// What SPIRE's datastore refuses in an entry before writing it (`validateRegistrationEntry`), in
/// its order; the API answers InvalidArgument with `datastore-validation: ` before the text.
pub fn entry_datastore_checks(e: &RegistrationEntry) -> Result<(), String> {
    if e.store_svid {
        if e.disable_x509_svid_prefetch {
            return Err("specifying cache behaviour is incompatible with storable SVIDs".into());
        }
        if let Some(first) = e.selectors.first()
            && e.selectors.iter().any(|s| s.kind != first.kind)
        {
            return Err("invalid registration entry: selector types must be the same when store SVID is enabled".into());
        }
    }
    if e.id.len() > ENTRY_ID_MAX_LEN {
        return Err("invalid registration entry: entry ID too long".into());
    }
    if !e.id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')) {
        return Err("invalid registration entry: entry ID contains invalid characters".into());
    }
    if e.x509_svid_ttl < 0 {
        return Err("invalid registration entry: X509SvidTtl is not set".into());
    }
    if e.jwt_svid_ttl < 0 {
        return Err("invalid registration entry: JwtSvidTtl is not set".into());
    }
    Ok(())
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

    fn td() -> TrustDomain {
        TrustDomain::parse("example.org").unwrap()
    }

    #[test]
    fn round_trip() {
        let mut e = good();
        e.dns_names = vec!["web.example.org".into(), "*.example.org".into()];
        e.federates_with = vec!["other.org".into()];
        e.additional_attributes =
            Some(pb::AdditionalAttributes { disable_x509_svid_prefetch: true, jwt_svid_include_jti: false });
        let rec = entry(&e, &td()).unwrap();
        let back = entry_proto(&rec, None);
        assert_eq!(back.spiffe_id, e.spiffe_id);
        assert_eq!(back.dns_names, e.dns_names);
        assert_eq!(back.federates_with, e.federates_with);
        assert!(back.additional_attributes.unwrap().disable_x509_svid_prefetch);
    }

    /// The messages SPIRE v1.13.3's server answers for the same entries (checked against it by
    /// `crates/interop/tests/upstream_cli_our_server.rs` for the cases its CLI can send).
    #[test]
    fn bad_input_reads_like_spire() {
        type Mutation = fn(&mut pb::Entry);
        let cases: Vec<(Mutation, &str)> = vec![
            (|e| e.spiffe_id = None, "invalid spiffe ID: request must specify SPIFFE ID"),
            (
                |e| e.spiffe_id = id("Example.org", "/w"),
                "invalid spiffe ID: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores",
            ),
            (|e| e.spiffe_id = id("example.org", "w"), "invalid spiffe ID: path must have a leading slash"),
            (|e| e.spiffe_id = id("example.org", "/a//b"), "invalid spiffe ID: path cannot contain empty segments"),
            (
                |e| e.spiffe_id = id("other.org", "/w"),
                "invalid spiffe ID: \"spiffe://other.org/w\" is not a member of trust domain \"example.org\"",
            ),
            (
                |e| e.spiffe_id = id("example.org", ""),
                "invalid spiffe ID: \"spiffe://example.org\" is not a workload in trust domain \"example.org\"; path is empty",
            ),
            (
                |e| e.spiffe_id = id("example.org", "/spire/server"),
                "invalid spiffe ID: \"spiffe://example.org/spire/server\" is not a workload in trust domain \"example.org\"; path is in the reserved namespace",
            ),
            (|e| e.parent_id = id("", "/x"), "invalid parent ID: trust domain is missing"),
            (
                |e| e.parent_id = id("other.org", "/x"),
                "invalid parent ID: \"spiffe://other.org/x\" is not a member of trust domain \"example.org\"",
            ),
            (
                |e| e.parent_id = id("example.org", ""),
                "invalid parent ID: \"spiffe://example.org\" is not a member of trust domain \"example.org\"; path is empty",
            ),
            (|e| e.selectors.clear(), "selector list is empty"),
            (|e| e.selectors[0].r#type.clear(), "missing selector type"),
            (|e| e.selectors[0].value.clear(), "missing selector value"),
            (|e| e.dns_names = vec!["a..b".into()], "invalid DNS name: idna error\nidna: invalid label \"a..b\""),
            (|e| e.hint = "h".repeat(1025), "hint is too long, max length is 1024 characters"),
            (
                |e| e.federates_with = vec!["spiffe://Bad".into()],
                "invalid federated trust domain: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores",
            ),
            // The DNS names are checked before the selectors, as SPIRE does.
            (
                |e| {
                    e.selectors.clear();
                    e.dns_names = vec!["x*".into()];
                },
                "invalid DNS name: wildcard must be first label",
            ),
        ];
        for (mutate, want) in cases {
            let mut e = good();
            mutate(&mut e);
            assert_eq!(entry(&e, &td()).unwrap_err(), want);
        }
        // go-spiffe takes a federated trust domain from an ID, path and all.
        let mut e = good();
        e.federates_with = vec!["spiffe://other.org/some/path".into()];
        assert_eq!(entry(&e, &td()).unwrap().federates_with[0].as_str(), "other.org");
    }

    #[test]
    fn datastore_checks_read_like_spire() {
        let base = || entry(&good(), &td()).unwrap();
        type Mutation = fn(&mut RegistrationEntry);
        let cases: Vec<(Mutation, &str)> = vec![
            (
                |e| {
                    e.store_svid = true;
                    e.selectors.push(Selector::new("k8s", "ns:x").unwrap());
                },
                "invalid registration entry: selector types must be the same when store SVID is enabled",
            ),
            (
                |e| {
                    e.store_svid = true;
                    e.disable_x509_svid_prefetch = true;
                },
                "specifying cache behaviour is incompatible with storable SVIDs",
            ),
            (|e| e.id = "a".repeat(256), "invalid registration entry: entry ID too long"),
            (|e| e.id = "a b".into(), "invalid registration entry: entry ID contains invalid characters"),
            (|e| e.x509_svid_ttl = -1, "invalid registration entry: X509SvidTtl is not set"),
            (|e| e.jwt_svid_ttl = -1, "invalid registration entry: JwtSvidTtl is not set"),
        ];
        for (mutate, want) in cases {
            let mut e = base();
            mutate(&mut e);
            assert_eq!(entry_datastore_checks(&e).unwrap_err(), want);
        }
        let mut e = base();
        e.id = "Custom-ID_1.2".into();
        entry_datastore_checks(&e).unwrap();
    }
}
