//! DNS names as SPIRE checks them in entries and X509-SVID CSRs (`pkg/common/x509util/dns.go`:
//! `ValidateLabel` and `CheckForWildcardOverlap`), with its error texts, so that both servers accept
//! and refuse the same names and `spire-server entry create` prints the same message against either.
//!
//! SPIRE runs the name through `golang.org/x/net/idna` with a profile that has no mapping step, so
//! only label lengths, empty labels and hyphen placement are checked: characters such as `_`, `!`,
//! `/` or a space pass, exactly as they do in SPIRE. A-labels (`xn--...`) are not decoded here;
//! SPIRE also refuses those whose Punycode is malformed.

use std::collections::BTreeSet;

/// `ValidateLabel`: the whole error text SPIRE wraps after `invalid DNS name: `.
pub fn validate_label(domain: &str) -> Result<(), String> {
    if !domain.is_ascii() {
        return Err("name must be ascii".into());
    }
    match domain.matches('*').count() {
        0 => non_wildcard(domain),
        1 => match domain.strip_prefix("*.") {
            Some(rest) => non_wildcard(rest),
            None => Err("wildcard must be first label".into()),
        },
        _ => Err("too many wildcards".into()),
    }
}

/// `validNonwildcardLabel`.
fn non_wildcard(domain: &str) -> Result<(), String> {
    let domain = domain.trim();
    if domain.is_empty() {
        return Err("empty or only whitespace".into());
    }
    if domain.ends_with('.') {
        return Err("domain ends with dot".into());
    }
    if domain.starts_with("*.") {
        return Err("wildcard not allowed".into());
    }
    idna_to_ascii(domain).map_err(|label| format!("idna error\nidna: invalid label {}", go_quote(label)))
}

/// What `idna.New(StrictDomainName, ValidateLabels, VerifyDNSLength, CheckHyphens, ...).ToASCII`
/// checks on an ASCII name: the first failing label (the whole name for an empty label or a name
/// over 253 bytes), as the library reports it.
fn idna_to_ascii(domain: &str) -> Result<(), &str> {
    let labels: Vec<&str> = domain.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err(domain);
        }
        if label.starts_with("xn--") {
            continue;
        }
        let b = label.as_bytes();
        if b.len() > 4 && b[2] == b'-' && b[3] == b'-' {
            return Err(label);
        }
        if b[0] == b'-' || b[b.len() - 1] == b'-' {
            return Err(label);
        }
    }
    if let Some(long) = labels.iter().find(|l| l.len() > 63) {
        return Err(long);
    }
    if domain.len() > 253 {
        return Err(domain);
    }
    Ok(())
}

/// Go's `%q` for an ASCII string.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `CheckForWildcardOverlap`: a name that a `*.` name of the same list covers. SPIRE walks a Go map,
/// so with several overlaps the one it names varies; we name the first in sorted order.
pub fn check_wildcard_overlap(names: &[String]) -> Result<(), String> {
    let set: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    for name in &set {
        if name.starts_with('*') {
            continue;
        }
        let covering = match name.split_once('.') {
            Some((_, rest)) => format!("*.{rest}"),
            None => "*".to_owned(),
        };
        if set.contains(covering.as_str()) {
            return Err(format!(
                "name {} overlaps with an existing wildcard name in the list: wildcard overlap",
                go_quote(name)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answers SPIRE v1.13.3's server gave for these names in `entry create -dns`.
    #[test]
    fn like_spire() {
        let cases: &[(&str, Result<(), &str>)] = &[
            ("*.a.b", Ok(())),
            ("A.COM", Ok(())),
            ("a_b.com", Ok(())),
            ("a b", Ok(())),
            ("a!b", Ok(())),
            ("a/b", Ok(())),
            ("web-1.example.org", Ok(())),
            ("a.*.b", Err("wildcard must be first label")),
            ("x*", Err("wildcard must be first label")),
            ("*.*.a", Err("too many wildcards")),
            ("a.", Err("domain ends with dot")),
            (" ", Err("empty or only whitespace")),
            ("é.com", Err("name must be ascii")),
            ("-a.com", Err("idna error\nidna: invalid label \"-a\"")),
            ("a-.com", Err("idna error\nidna: invalid label \"a-\"")),
            ("a..b", Err("idna error\nidna: invalid label \"a..b\"")),
            ("ab--c.com", Err("idna error\nidna: invalid label \"ab--c\"")),
        ];
        for (name, want) in cases {
            assert_eq!(validate_label(name), want.map_err(str::to_owned), "{name:?}");
        }
        let long = "a".repeat(70);
        assert_eq!(validate_label(&format!("{long}.com")), Err(format!("idna error\nidna: invalid label \"{long}\"")));
    }

    #[test]
    fn wildcard_overlap() {
        let names = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            check_wildcard_overlap(&names(&["*.a.com", "b.a.com"])),
            Err("name \"b.a.com\" overlaps with an existing wildcard name in the list: wildcard overlap".into())
        );
        assert_eq!(check_wildcard_overlap(&names(&["*.a.com", "b.c.a.com", "a.com"])), Ok(()));
    }
}
