//! SPIRE's X509-SVID printer (`cmd/spire-agent/cli/api/printer.go`), shared by `fetch x509` and
//! `watch`: a count line with the response time as Go's `time.Duration` prints it, then per SVID a
//! blank line and tab-aligned lines whose times are Go's `time.Time` `%v` (`2024-01-01 00:00:00 +0000
//! UTC`; certificate times are UTC), and a closing blank line.

use std::fmt::Write as _;

use super::svid::{Cert, X509Svid};
use crate::gotime::{GoDuration, unix_utc};

/// The whole block for one response.
pub(crate) fn x509_svids(svids: &[X509Svid], elapsed: GoDuration) -> String {
    let mut out = format!("Received {} svid{} after {elapsed}\n", svids.len(), if svids.len() == 1 { "" } else { "s" });
    for svid in svids {
        out.push('\n');
        x509_svid(&mut out, svid);
        for (trust_domain, bundle) in &svid.federated {
            authorities(&mut out, &format!("[{trust_domain}] CA"), bundle);
        }
    }
    out.push('\n');
    out
}

fn x509_svid(out: &mut String, svid: &X509Svid) {
    // The SPIFFE ID first, so that a problem further down can be tied to its record.
    let _ = writeln!(out, "SPIFFE ID:\t\t{}", svid.spiffe_id);
    if !svid.hint.is_empty() {
        let _ = writeln!(out, "Hint:\t\t\t{}", svid.hint);
    }
    if let Some(leaf) = svid.certificates.first() {
        let _ = writeln!(out, "SVID Valid After:\t{}", unix_utc(leaf.not_before));
        let _ = writeln!(out, "SVID Valid Until:\t{}", unix_utc(leaf.not_after));
    }
    authorities(out, "Intermediate", svid.certificates.get(1..).unwrap_or_default());
    authorities(out, "CA", &svid.bundle);
}

fn authorities(out: &mut String, label: &str, certs: &[Cert]) {
    for (i, cert) in certs.iter().enumerate() {
        let n = i + 1;
        let _ = writeln!(out, "{label} #{n} Valid After:\t{}", unix_utc(cert.not_before));
        let _ = writeln!(out, "{label} #{n} Valid Until:\t{}", unix_utc(cert.not_after));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spire_identity::{KeyType, PrivateKey};

    fn cert(not_before: i64, not_after: i64) -> Cert {
        Cert { der: Vec::new(), not_before, not_after }
    }

    fn svid(
        id: &str,
        hint: &str,
        chain: Vec<Cert>,
        bundle: Vec<Cert>,
        federated: Vec<(String, Vec<Cert>)>,
    ) -> X509Svid {
        X509Svid {
            spiffe_id: id.into(),
            hint: hint.into(),
            certificates: chain,
            private_key: PrivateKey::generate(KeyType::EcP256).unwrap(),
            bundle,
            federated,
        }
    }

    const T0: i64 = 1_704_067_200; // 2024-01-01 00:00:00 UTC

    #[test]
    fn one_svid_like_spire_test() {
        // The layout of SPIRE's own test (api_test.go TestFetchX509Command), with its count line.
        let s =
            svid("spiffe://example.org/foo", "", vec![cert(T0, T0 + 3600)], vec![cert(T0 - 60, T0 + 86400)], vec![]);
        assert_eq!(
            x509_svids(&[s], GoDuration(3_712_345)),
            "Received 1 svid after 3.712345ms\n\
             \n\
             SPIFFE ID:\t\tspiffe://example.org/foo\n\
             SVID Valid After:\t2024-01-01 00:00:00 +0000 UTC\n\
             SVID Valid Until:\t2024-01-01 01:00:00 +0000 UTC\n\
             CA #1 Valid After:\t2023-12-31 23:59:00 +0000 UTC\n\
             CA #1 Valid Until:\t2024-01-02 00:00:00 +0000 UTC\n\
             \n"
        );
    }

    #[test]
    fn hints_intermediates_federated_and_plural() {
        let fed = vec![("spiffe://federated.td".to_owned(), vec![cert(T0, T0 + 7200), cert(T0 + 1, T0 + 7201)])];
        let a = svid(
            "spiffe://example.org/a",
            "external",
            vec![cert(T0, T0 + 60), cert(T0 - 10, T0 + 600)],
            vec![cert(T0 - 20, T0 + 900)],
            fed.clone(),
        );
        let b = svid("spiffe://example.org/b", "", vec![cert(T0, T0 + 60)], vec![cert(T0 - 20, T0 + 900)], fed);
        assert_eq!(
            x509_svids(&[a, b], GoDuration(1_500_000_000)),
            "Received 2 svids after 1.5s\n\
             \n\
             SPIFFE ID:\t\tspiffe://example.org/a\n\
             Hint:\t\t\texternal\n\
             SVID Valid After:\t2024-01-01 00:00:00 +0000 UTC\n\
             SVID Valid Until:\t2024-01-01 00:01:00 +0000 UTC\n\
             Intermediate #1 Valid After:\t2023-12-31 23:59:50 +0000 UTC\n\
             Intermediate #1 Valid Until:\t2024-01-01 00:10:00 +0000 UTC\n\
             CA #1 Valid After:\t2023-12-31 23:59:40 +0000 UTC\n\
             CA #1 Valid Until:\t2024-01-01 00:15:00 +0000 UTC\n\
             [spiffe://federated.td] CA #1 Valid After:\t2024-01-01 00:00:00 +0000 UTC\n\
             [spiffe://federated.td] CA #1 Valid Until:\t2024-01-01 02:00:00 +0000 UTC\n\
             [spiffe://federated.td] CA #2 Valid After:\t2024-01-01 00:00:01 +0000 UTC\n\
             [spiffe://federated.td] CA #2 Valid Until:\t2024-01-01 02:00:01 +0000 UTC\n\
             \n\
             SPIFFE ID:\t\tspiffe://example.org/b\n\
             SVID Valid After:\t2024-01-01 00:00:00 +0000 UTC\n\
             SVID Valid Until:\t2024-01-01 00:01:00 +0000 UTC\n\
             CA #1 Valid After:\t2023-12-31 23:59:40 +0000 UTC\n\
             CA #1 Valid Until:\t2024-01-01 00:15:00 +0000 UTC\n\
             [spiffe://federated.td] CA #1 Valid After:\t2024-01-01 00:00:00 +0000 UTC\n\
             [spiffe://federated.td] CA #1 Valid Until:\t2024-01-01 02:00:00 +0000 UTC\n\
             [spiffe://federated.td] CA #2 Valid After:\t2024-01-01 00:00:01 +0000 UTC\n\
             [spiffe://federated.td] CA #2 Valid Until:\t2024-01-01 02:00:01 +0000 UTC\n\
             \n"
        );
        assert_eq!(x509_svids(&[], GoDuration(42)), "Received 0 svids after 42ns\n\n");
    }
}
