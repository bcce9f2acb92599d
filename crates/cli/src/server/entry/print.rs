//! SPIRE's pretty layout of a registration entry (`printEntry`) and the order entries are listed in
//! (`SortTypesEntries`).

use std::cmp::Ordering;
use std::fmt::Write as _;

use spire_proto::spire::api::types::{Entry, Selector, Spiffeid};

use crate::gotime::unix_utc;
use crate::server::common::id_string;

/// Labels are padded to the longest one SPIRE can print (`DisableX509SvidPrefetch`).
const LABEL_WIDTH: usize = 23;

fn line(out: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{label:<LABEL_WIDTH$} : {value}");
}

/// One entry as SPIRE prints it, ending with a blank line. Optional lines appear only when set.
pub(crate) fn entry_block(e: &Entry) -> String {
    let mut out = String::new();
    line(&mut out, "Entry ID", if e.id.is_empty() { "(none)" } else { &e.id });
    line(&mut out, "SPIFFE ID", id_string(e.spiffe_id.as_ref()));
    line(&mut out, "Parent ID", id_string(e.parent_id.as_ref()));
    line(&mut out, "Revision", e.revision_number);
    if e.downstream {
        line(&mut out, "Downstream", true);
    }
    line(&mut out, "X509-SVID TTL", ttl(e.x509_svid_ttl));
    line(&mut out, "JWT-SVID TTL", ttl(e.jwt_svid_ttl));
    if e.expires_at != 0 {
        line(&mut out, "Expiration time", unix_utc(e.expires_at));
    }
    for s in &e.selectors {
        line(&mut out, "Selector", format_args!("{}:{}", s.r#type, s.value));
    }
    for td in &e.federates_with {
        line(&mut out, "FederatesWith", td);
    }
    for dns in &e.dns_names {
        line(&mut out, "DNS name", dns);
    }
    if e.admin {
        line(&mut out, "Admin", true);
    }
    if e.store_svid {
        line(&mut out, "StoreSvid", true);
    }
    if !e.hint.is_empty() {
        line(&mut out, "Hint", &e.hint);
    }
    if let Some(attrs) = &e.additional_attributes {
        if attrs.disable_x509_svid_prefetch {
            line(&mut out, "DisableX509SvidPrefetch", true);
        }
        if attrs.jwt_svid_include_jti {
            line(&mut out, "JwtSvidIncludeJti", true);
        }
    }
    out.push('\n');
    out
}

fn ttl(value: i32) -> String {
    if value == 0 { "default".to_owned() } else { value.to_string() }
}

/// `Found N entries` followed by each entry.
pub(crate) fn entries_listing(entries: &[Entry]) -> String {
    let mut out =
        crate::server::common::pluralize(&format!("Found {} ", entries.len()), "entry", "entries", entries.len());
    out.push('\n');
    for e in entries {
        out.push_str(&entry_block(e));
    }
    out
}

/// Sorts each entry's selectors, then the entries: by SPIFFE ID, parent ID (trust domain, then path),
/// X509-SVID TTL, JWT-SVID TTL and selectors (fewer first, then pairwise).
pub(crate) fn sort_entries(entries: &mut [Entry]) {
    for e in entries.iter_mut() {
        e.selectors.sort_by(compare_selector);
    }
    entries.sort_by(|a, b| {
        compare_id(a.spiffe_id.as_ref(), b.spiffe_id.as_ref())
            .then_with(|| compare_id(a.parent_id.as_ref(), b.parent_id.as_ref()))
            .then_with(|| a.x509_svid_ttl.cmp(&b.x509_svid_ttl))
            .then_with(|| a.jwt_svid_ttl.cmp(&b.jwt_svid_ttl))
            .then_with(|| compare_selectors(&a.selectors, &b.selectors))
    });
}

fn compare_id(a: Option<&Spiffeid>, b: Option<&Spiffeid>) -> Ordering {
    let key = |id: Option<&Spiffeid>| id.map(|i| (i.trust_domain.clone(), i.path.clone())).unwrap_or_default();
    key(a).cmp(&key(b))
}

fn compare_selector(a: &Selector, b: &Selector) -> Ordering {
    a.r#type.cmp(&b.r#type).then_with(|| a.value.cmp(&b.value))
}

fn compare_selectors(a: &[Selector], b: &[Selector]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| {
        a.iter().zip(b).map(|(x, y)| compare_selector(x, y)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
    })
}

/// The pretty output of `entry create|update`: succeeded entries on stdout, each failed one on stderr
/// behind a `Failed to <verb> the following entry (code: .., msg: ".."):` line; any failure fails the
/// command.
pub(crate) fn print_results(
    ctx: &mut crate::server::ctx::Ctx<'_>,
    results: &[(Option<spire_proto::spire::api::types::Status>, Option<Entry>)],
    verb: &str,
) -> Result<(), crate::error::CliError> {
    let failed = |s: &Option<spire_proto::spire::api::types::Status>| s.as_ref().is_some_and(|s| s.code != 0);
    let default_entry = Entry::default();
    for (status, entry) in results.iter().filter(|(s, _)| !failed(s)) {
        let _ = status;
        ctx.out(&entry_block(entry.as_ref().unwrap_or(&default_entry)))?;
    }
    let mut any_failed = false;
    for (status, entry) in results.iter().filter(|(s, _)| failed(s)) {
        any_failed = true;
        let status = status.clone().unwrap_or_default();
        ctx.err(&format!(
            "Failed to {verb} the following entry (code: {}, msg: {}):\n",
            crate::error::go_code_name(status.code),
            crate::flags::go_quote(&status.message)
        ))?;
        ctx.err(&entry_block(entry.as_ref().unwrap_or(&default_entry)))?;
    }
    if any_failed {
        return Err(crate::error::CliError::msg(format!("failed to {verb} one or more entries")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use spire_proto::spire::api::types::AdditionalAttributes;

    fn id(td: &str, path: &str) -> Option<Spiffeid> {
        Some(Spiffeid { trust_domain: td.into(), path: path.into() })
    }

    fn sel(t: &str, v: &str) -> Selector {
        Selector { r#type: t.into(), value: v.into() }
    }

    #[test]
    fn minimal_entry() {
        let e = Entry {
            spiffe_id: id("example.org", "/already-exist"),
            parent_id: id("example.org", "/spire/server"),
            selectors: vec![sel("unix", "uid:1")],
            ..Default::default()
        };
        assert_eq!(
            entry_block(&e),
            "Entry ID                : (none)
SPIFFE ID               : spiffe://example.org/already-exist
Parent ID               : spiffe://example.org/spire/server
Revision                : 0
X509-SVID TTL           : default
JWT-SVID TTL            : default
Selector                : unix:uid:1

"
        );
    }

    #[test]
    fn every_optional_line_in_order() {
        let e = Entry {
            id: "entry-id".into(),
            spiffe_id: id("example.org", "/son"),
            parent_id: id("example.org", "/father"),
            revision_number: 3,
            downstream: true,
            x509_svid_ttl: 200,
            jwt_svid_ttl: 30,
            expires_at: 1_552_410_266,
            selectors: vec![sel("type", "key1:value"), sel("type", "key2:value")],
            federates_with: vec!["spiffe://domaina.test".into(), "spiffe://domainb.test".into()],
            dns_names: vec!["unu1000".into()],
            admin: true,
            store_svid: true,
            hint: "internal".into(),
            additional_attributes: Some(AdditionalAttributes {
                disable_x509_svid_prefetch: true,
                jwt_svid_include_jti: true,
            }),
            ..Default::default()
        };
        assert_eq!(
            entry_block(&e),
            "Entry ID                : entry-id
SPIFFE ID               : spiffe://example.org/son
Parent ID               : spiffe://example.org/father
Revision                : 3
Downstream              : true
X509-SVID TTL           : 200
JWT-SVID TTL            : 30
Expiration time         : 2019-03-12 17:04:26 +0000 UTC
Selector                : type:key1:value
Selector                : type:key2:value
FederatesWith           : spiffe://domaina.test
FederatesWith           : spiffe://domainb.test
DNS name                : unu1000
Admin                   : true
StoreSvid               : true
Hint                    : internal
DisableX509SvidPrefetch : true
JwtSvidIncludeJti       : true

"
        );
    }

    #[test]
    fn listing_counts() {
        assert_eq!(entries_listing(&[]), "Found 0 entries\n");
        let e = Entry { id: "a".into(), ..Default::default() };
        assert!(entries_listing(std::slice::from_ref(&e)).starts_with("Found 1 entry\nEntry ID                : a\n"));
        assert!(entries_listing(&[e.clone(), e]).starts_with("Found 2 entries\n"));
    }

    #[test]
    fn sorted_like_spire() {
        let mk = |td: &str, path: &str, x509: i32, sels: Vec<Selector>| Entry {
            id: format!("{td}{path}{x509}{}", sels.len()),
            spiffe_id: id(td, path),
            parent_id: id("example.org", "/parent"),
            x509_svid_ttl: x509,
            selectors: sels,
            ..Default::default()
        };
        let mut entries = vec![
            mk("example.org", "/b", 0, vec![sel("unix", "uid:2"), sel("a", "z")]),
            mk("example.org", "/a", 60, vec![]),
            mk("a.org", "/z", 0, vec![]),
            mk("example.org", "/a", 30, vec![sel("unix", "uid:1")]),
            mk("example.org", "/b", 0, vec![sel("unix", "uid:1")]),
        ];
        sort_entries(&mut entries);
        let order: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(order, ["a.org/z00", "example.org/a301", "example.org/a600", "example.org/b01", "example.org/b02"]);
        // Selectors of each entry are sorted too.
        assert_eq!(entries[4].selectors, vec![sel("a", "z"), sel("unix", "uid:2")]);
    }
}
