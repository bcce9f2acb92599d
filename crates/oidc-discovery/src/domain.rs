//! Which hosts the discovery document is served for: SPIRE's domain allowlist.
//!
//! SPIRE compares the request's host (or `X-Forwarded-Host`), without its port, to the configured
//! domains after checking it with IDNA's lookup profile, and requires names to be given already in
//! punycode. We apply the same rules to the ASCII names such a check can accept: lower-case
//! letters, digits and hyphens in labels that neither start nor end with a hyphen; anything that
//! IDNA would rewrite (upper case, non-ASCII) must already be punycode.

use crate::config::split_host_port;

/// Why a domain is refused; the texts are SPIRE's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Not in `domains`.
    #[error("domain {0:?} is not allowed")]
    NotAllowed(String),
    /// Not a valid name.
    #[error("domain {0:?} is not a valid domain name: {1}")]
    Invalid(String, String),
    /// A name IDNA would rewrite.
    #[error("domain {0:?} must already be punycode encoded")]
    NotPunycode(String),
}

/// The configured domains.
#[derive(Debug, Clone)]
pub struct DomainPolicy {
    allowed: Vec<String>,
}

impl DomainPolicy {
    /// The allowlist; each configured domain must itself pass the check.
    pub fn new(domains: &[String]) -> Result<Self, DomainError> {
        for d in domains {
            check_domain(d)?;
        }
        Ok(Self { allowed: domains.to_vec() })
    }

    /// Checks a `Host` value (`name` or `name:port`).
    pub fn verify_host(&self, host: &str) -> Result<(), DomainError> {
        let domain = split_host_port(host).map(|(h, _)| h).unwrap_or(host);
        check_domain(domain)?;
        if self.allowed.iter().any(|a| a == domain) { Ok(()) } else { Err(DomainError::NotAllowed(domain.to_owned())) }
    }
}

/// IDNA lookup validity of an already-ASCII name.
fn check_domain(domain: &str) -> Result<(), DomainError> {
    if let Some(c) = domain.chars().find(|c| c.is_ascii() && !is_std3(*c) && !c.is_ascii_uppercase()) {
        return Err(DomainError::Invalid(domain.to_owned(), format!("idna: disallowed rune U+{:04X}", c as u32)));
    }
    for label in domain.split('.') {
        let bad_hyphen = label.starts_with('-')
            || label.ends_with('-')
            || (label.as_bytes().get(2..4) == Some(b"--") && !label.to_ascii_lowercase().starts_with("xn--"));
        if bad_hyphen {
            return Err(DomainError::Invalid(domain.to_owned(), format!("idna: invalid label {label:?}")));
        }
    }
    if domain.chars().any(|c| !c.is_ascii() || c.is_ascii_uppercase()) {
        return Err(DomainError::NotPunycode(domain.to_owned()));
    }
    Ok(())
}

/// The ASCII characters STD3 rules allow in a name (after case mapping), plus the label dot.
fn is_std3(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> DomainPolicy {
        DomainPolicy::new(&["oidc.example.org".into(), "xn--bcher-kva.example".into()]).unwrap()
    }

    #[test]
    fn allowed_hosts_with_or_without_port() {
        let p = policy();
        assert_eq!(p.verify_host("oidc.example.org"), Ok(()));
        assert_eq!(p.verify_host("oidc.example.org:8443"), Ok(()));
        assert_eq!(p.verify_host("xn--bcher-kva.example"), Ok(()));
    }

    #[test]
    fn refusals_use_spire_messages() {
        let p = policy();
        assert_eq!(p.verify_host("evil.example").unwrap_err().to_string(), r#"domain "evil.example" is not allowed"#);
        assert_eq!(
            p.verify_host("OIDC.example.org").unwrap_err().to_string(),
            r#"domain "OIDC.example.org" must already be punycode encoded"#
        );
        assert_eq!(
            p.verify_host("bücher.example").unwrap_err().to_string(),
            r#"domain "bücher.example" must already be punycode encoded"#
        );
        assert_eq!(
            p.verify_host("a_b.example").unwrap_err().to_string(),
            r#"domain "a_b.example" is not a valid domain name: idna: disallowed rune U+005F"#
        );
        assert_eq!(
            p.verify_host("-a.example").unwrap_err().to_string(),
            r#"domain "-a.example" is not a valid domain name: idna: invalid label "-a""#
        );
        assert_eq!(p.verify_host("").unwrap_err().to_string(), r#"domain "" is not allowed"#);
    }

    #[test]
    fn configured_domains_must_be_punycode() {
        assert!(matches!(DomainPolicy::new(&["Example.org".into()]), Err(DomainError::NotPunycode(_))));
    }
}
