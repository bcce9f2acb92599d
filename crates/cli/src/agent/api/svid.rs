//! X509-SVIDs out of a FetchX509SVID response, checked the two ways SPIRE's CLI checks them:
//! `fetch x509` with its own `parseAndValidateX509SVIDResponse` (every SVID must verify against its
//! bundle), and `watch` with go-spiffe's X.509 context parser (leaf and key must agree; bundles are
//! gathered into one set by trust domain).
//!
//! Go ranges over the response's maps in random order; federated bundles are sorted by trust domain
//! here so that output is stable.

use std::time::SystemTime;

use spire_identity::x509::{split_der_chain, verify_svid};
use spire_identity::{Bundle, BundleSet, PrivateKey, SpiffeId, TrustDomain};
use spire_proto::workload::{X509svid, X509svidResponse};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::flags::go_quote;

/// One certificate, with the validity the printers show.
#[derive(Debug, Clone)]
pub(crate) struct Cert {
    pub(crate) der: Vec<u8>,
    /// Unix seconds.
    pub(crate) not_before: i64,
    /// Unix seconds.
    pub(crate) not_after: i64,
}

/// SPIRE's `X509SVID` (fetch_x509.go): what is printed and written for one SVID.
#[derive(Debug, Clone)]
pub(crate) struct X509Svid {
    pub(crate) spiffe_id: String,
    pub(crate) hint: String,
    /// Leaf first.
    pub(crate) certificates: Vec<Cert>,
    pub(crate) private_key: PrivateKey,
    /// Authorities of the SVID's own trust domain.
    pub(crate) bundle: Vec<Cert>,
    /// Other trust domains' authorities, sorted by key.
    pub(crate) federated: Vec<(String, Vec<Cert>)>,
}

/// `x509.ParseCertificates`: concatenated DER certificates, possibly none.
fn parse_certificates(data: &[u8]) -> Result<Vec<Cert>, String> {
    split_der_chain(data)
        .map_err(|e| format!("x509: {e}"))?
        .into_iter()
        .map(|der| {
            let (not_before, not_after) = match X509Certificate::from_der(&der) {
                Ok((_, c)) => (c.validity().not_before.timestamp(), c.validity().not_after.timestamp()),
                Err(e) => return Err(format!("x509: {e}")),
            };
            Ok(Cert { der, not_before, not_after })
        })
        .collect()
}

fn sorted<V>(map: &std::collections::HashMap<String, V>) -> Vec<(&String, &V)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// SPIRE's `parseAndValidateX509SVIDResponse`, at time `now`.
pub(crate) fn parse_and_validate(resp: &X509svidResponse, now: SystemTime) -> Result<Vec<X509Svid>, String> {
    if resp.svids.is_empty() {
        return Err("workload response contains no svids".to_owned());
    }
    let mut federated = Vec::new();
    for (domain, der) in sorted(&resp.federated_bundles) {
        let certs = parse_certificates(der)
            .map_err(|e| format!("failed to parse bundle for federated domain {}: {e}", go_quote(domain)))?;
        if certs.is_empty() {
            return Err(format!("no certificates in bundle for federated domain {}", go_quote(domain)));
        }
        federated.push((domain.clone(), certs));
    }
    let svids = resp
        .svids
        .iter()
        .enumerate()
        .map(|(i, svid)| {
            parse_svid(svid, &federated)
                .map_err(|e| format!("failed to parse svid entry {i} for spiffe id {}: {e}", go_quote(&svid.spiffe_id)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for svid in &svids {
        validate(svid, now)?;
    }
    Ok(svids)
}

fn parse_svid(svid: &X509svid, federated: &[(String, Vec<Cert>)]) -> Result<X509Svid, String> {
    let certificates = parse_certificates(&svid.x509_svid)?;
    if certificates.is_empty() {
        return Err("no certificates found".to_owned());
    }
    let private_key =
        PrivateKey::from_pkcs8_der(&svid.x509_svid_key).map_err(|e| format!("failed to parse private key: {e}"))?;
    let bundle = parse_certificates(&svid.bundle).map_err(|e| format!("failed to parse trust bundle: {e}"))?;
    if bundle.is_empty() {
        return Err("no certificates in trust bundle".to_owned());
    }
    Ok(X509Svid {
        spiffe_id: svid.spiffe_id.clone(),
        hint: svid.hint.clone(),
        certificates,
        private_key,
        bundle,
        federated: federated.to_vec(),
    })
}

/// SPIRE's `validateX509SVID`: the chain must verify against the SVID's bundle, taken as the bundle of
/// the trust domain of the SPIFFE ID the response names.
fn validate(svid: &X509Svid, now: SystemTime) -> Result<(), String> {
    let id = SpiffeId::parse(&svid.spiffe_id).map_err(|e| e.go_spiffe_message())?;
    let mut bundle = Bundle::new(id.trust_domain().clone());
    for cert in &svid.bundle {
        bundle.add_x509_authority(cert.der.clone()).map_err(|e| e.to_string())?;
    }
    let chain: Vec<&[u8]> = svid.certificates.iter().map(|c| c.der.as_slice()).collect();
    verify_svid(&chain, &BundleSet::from(bundle), now)
        .map_err(|e| format!("{} SVID failed verification against bundle: {e}", go_quote(&svid.spiffe_id)))?;
    Ok(())
}

/// go-spiffe's `parseX509Context`, shaped as `api watch` hands it to the printer: the SPIFFE ID comes
/// from the leaf, the bundle is the set's bundle for the SVID's trust domain, every other bundle of the
/// set is federated and keyed by its bare trust domain name, and the hint is not carried over.
pub(crate) fn parse_x509_context(resp: &X509svidResponse) -> Result<Vec<X509Svid>, String> {
    if resp.svids.is_empty() {
        return Err("no SVIDs in response".to_owned());
    }
    let mut hints = Vec::new();
    let mut parsed = Vec::new();
    for svid in &resp.svids {
        // With several SVIDs under one non-empty hint, the first one wins.
        if !svid.hint.is_empty() && hints.contains(&svid.hint) {
            continue;
        }
        hints.push(svid.hint.clone());
        parsed.push(parse_raw(&svid.x509_svid, &svid.x509_svid_key)?);
    }

    // x509bundle.NewSet: one bundle per trust domain, the last one added wins.
    let mut set: Vec<(TrustDomain, Vec<Cert>)> = Vec::new();
    let mut add = |id: &str, der: &[u8]| -> Result<(), String> {
        let td = trust_domain_from_string(id)?;
        let certs = parse_certificates(der)?;
        match set.iter_mut().find(|(t, _)| *t == td) {
            Some(entry) => entry.1 = certs,
            None => set.push((td, certs)),
        }
        Ok(())
    };
    for svid in &resp.svids {
        add(&svid.spiffe_id, &svid.bundle)?;
    }
    for (id, der) in sorted(&resp.federated_bundles) {
        add(id, der)?;
    }
    set.sort_by(|a, b| a.0.cmp(&b.0));

    Ok(parsed
        .into_iter()
        .map(|(id, certificates, private_key)| {
            let td = id.trust_domain();
            X509Svid {
                spiffe_id: id.to_string(),
                hint: String::new(),
                certificates,
                private_key,
                bundle: set.iter().find(|(t, _)| t == td).map(|(_, c)| c.clone()).unwrap_or_default(),
                federated: set.iter().filter(|(t, _)| t != td).map(|(t, c)| (t.to_string(), c.clone())).collect(),
            }
        })
        .collect())
}

/// go-spiffe's `x509svid.ParseRaw`: the chain, its leaf's SPIFFE ID, and a key that matches the leaf.
fn parse_raw(chain: &[u8], key: &[u8]) -> Result<(SpiffeId, Vec<Cert>, PrivateKey), String> {
    let certs = parse_certificates(chain).map_err(|e| format!("x509svid: unable to parse certificates: {e}"))?;
    let leaf = certs.first().ok_or("x509svid: no certificates found")?;
    let private_key =
        PrivateKey::from_pkcs8_der(key).map_err(|e| format!("x509svid: cannot parse PKCS8 private key: {e}"))?;
    let (_, cert) = X509Certificate::from_der(&leaf.der).map_err(|e| format!("x509svid: {e}"))?;
    let id = leaf_id(&cert).map_err(|e| format!("x509svid: could not get leaf SPIFFE ID: {e}"))?;
    if cert.public_key().raw != private_key.public_key_der().as_slice() {
        return Err("x509svid: private key does not match certificate public key".to_owned());
    }
    Ok((id, certs, private_key))
}

/// go-spiffe's `x509svid.IDFromCert`: the one URI SAN, as a SPIFFE ID.
fn leaf_id(cert: &X509Certificate<'_>) -> Result<SpiffeId, String> {
    let uris: Vec<&str> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::URI(u) => Some(*u),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(e.to_string()),
    };
    match uris.as_slice() {
        [] => Err("certificate contains no URI SAN".to_owned()),
        [one] => SpiffeId::parse(one).map_err(|e| e.go_spiffe_message()),
        _ => Err("certificate contains more than one URI SAN".to_owned()),
    }
}

/// go-spiffe's `spiffeid.TrustDomainFromString`: an ID (whose trust domain is taken) or a bare name.
fn trust_domain_from_string(text: &str) -> Result<TrustDomain, String> {
    if text.contains(":/") {
        SpiffeId::parse(text).map(|id| id.trust_domain().clone()).map_err(|e| e.go_spiffe_message())
    } else {
        TrustDomain::parse(text).map_err(|e| e.go_spiffe_message())
    }
}
