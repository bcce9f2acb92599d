//! SPIFFE IDs and trust domains, parsed exactly per SPIFFE-ID.md.
//!
//! We are as strict as go-spiffe (upper case in the trust domain is refused rather than folded) so that
//! every client library agrees on the identities we issue. Each error names the offending character and
//! where it is, because operators type these by hand.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest SPIFFE ID (whole URI, in bytes) that SPIFFE-ID.md §2.3 asks implementations to support.
pub const MAX_SPIFFE_ID_LEN: usize = 2048;
/// Longest trust domain name, the RFC 3986 host limit.
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

const SCHEME_PREFIX: &str = "spiffe://";

/// Why a SPIFFE ID, trust domain or path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpiffeIdError {
    /// The input was empty.
    #[error("cannot be empty")]
    Empty,
    /// The URI does not start with `spiffe://`.
    #[error("scheme is missing or invalid: a SPIFFE ID must start with \"spiffe://\"")]
    WrongScheme,
    /// Nothing between `spiffe://` and the path.
    #[error("trust domain is missing")]
    MissingTrustDomain,
    /// A character outside `[a-z0-9.-_]` in the trust domain.
    #[error(
        "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores: found {found:?} at byte {at}{hint}"
    )]
    BadTrustDomainChar {
        /// The character that is not allowed.
        found: char,
        /// Its byte offset in the trust domain name.
        at: usize,
        /// What the character probably meant (a port, userinfo, query...).
        hint: &'static str,
    },
    /// A character outside `[a-zA-Z0-9.-_]` in a path segment.
    #[error(
        "path segment characters are limited to letters, numbers, dots, dashes, and underscores: found {found:?} at byte {at} of the path{hint}"
    )]
    BadPathChar {
        /// The character that is not allowed.
        found: char,
        /// Its byte offset in the path.
        at: usize,
        /// What the character probably meant (percent-encoding, query...).
        hint: &'static str,
    },
    /// `//` in the path.
    #[error("path cannot contain empty segments")]
    EmptySegment,
    /// A `.` or `..` segment.
    #[error("path cannot contain dot segments")]
    DotSegment,
    /// The path ends with `/`.
    #[error("path cannot have a trailing slash")]
    TrailingSlash,
    /// A path given on its own did not start with `/`.
    #[error("path must have a leading slash")]
    NoLeadingSlash,
    /// The trust domain name is longer than 255 bytes.
    #[error("trust domain is too long: {len} bytes, at most {MAX_TRUST_DOMAIN_LEN} are allowed")]
    TrustDomainTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The whole ID is longer than 2048 bytes.
    #[error("SPIFFE ID is too long: {len} bytes, at most {MAX_SPIFFE_ID_LEN} are allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
}

impl SpiffeIdError {
    /// go-spiffe's wording of this error (`spiffeid/errors.go`), without the position and hint our
    /// own [`Display`](fmt::Display) adds. SPIRE's CLIs and server APIs print go-spiffe's text, so
    /// anything that must read exactly like SPIRE uses this. The length limits have no go-spiffe
    /// counterpart and keep our text.
    pub fn go_spiffe_message(&self) -> String {
        match self {
            Self::Empty => "cannot be empty".into(),
            Self::WrongScheme => "scheme is missing or invalid".into(),
            Self::MissingTrustDomain => "trust domain is missing".into(),
            Self::BadTrustDomainChar { .. } => {
                "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores"
                    .into()
            }
            Self::BadPathChar { .. } => {
                "path segment characters are limited to letters, numbers, dots, dashes, and underscores".into()
            }
            Self::EmptySegment => "path cannot contain empty segments".into(),
            Self::DotSegment => "path cannot contain dot segments".into(),
            Self::TrailingSlash => "path cannot have a trailing slash".into(),
            Self::NoLeadingSlash => "path must have a leading slash".into(),
            other => other.to_string(),
        }
    }
}

fn trust_domain_char_hint(c: char) -> &'static str {
    match c {
        'A'..='Z' => " (upper case is not allowed; use lower case)",
        ':' => " (a port is not allowed)",
        '@' => " (userinfo is not allowed)",
        '?' => " (a query is not allowed)",
        '#' => " (a fragment is not allowed)",
        '%' => " (percent-encoding is not allowed)",
        _ => "",
    }
}

fn path_char_hint(c: char) -> &'static str {
    match c {
        '?' => " (a query is not allowed)",
        '#' => " (a fragment is not allowed)",
        '%' => " (percent-encoding is not allowed)",
        _ => "",
    }
}

fn is_trust_domain_char(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_')
}

fn is_path_char(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_')
}

fn validate_trust_domain_name(name: &str) -> Result<(), SpiffeIdError> {
    if name.is_empty() {
        return Err(SpiffeIdError::MissingTrustDomain);
    }
    if let Some((at, found)) = name.char_indices().find(|&(_, c)| !c.is_ascii() || !is_trust_domain_char(c as u8)) {
        return Err(SpiffeIdError::BadTrustDomainChar { found, at, hint: trust_domain_char_hint(found) });
    }
    if name.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(SpiffeIdError::TrustDomainTooLong { len: name.len() });
    }
    Ok(())
}

/// Checks a SPIFFE ID path: empty, or `/seg(/seg)*` with no empty, `.` or `..` segments.
pub fn validate_path(path: &str) -> Result<(), SpiffeIdError> {
    if path.is_empty() {
        return Ok(());
    }
    if !path.starts_with('/') {
        return Err(SpiffeIdError::NoLeadingSlash);
    }
    let mut segment_start = 1;
    for (at, c) in path.char_indices().skip(1) {
        if c == '/' {
            check_segment(&path[segment_start..at])?;
            segment_start = at + 1;
        } else if !c.is_ascii() || !is_path_char(c as u8) {
            return Err(SpiffeIdError::BadPathChar { found: c, at, hint: path_char_hint(c) });
        }
    }
    let last = &path[segment_start..];
    if last.is_empty() {
        return Err(SpiffeIdError::TrailingSlash);
    }
    check_segment(last)
}

fn check_segment(segment: &str) -> Result<(), SpiffeIdError> {
    match segment {
        "" => Err(SpiffeIdError::EmptySegment),
        "." | ".." => Err(SpiffeIdError::DotSegment),
        _ => Ok(()),
    }
}

/// A trust domain name such as `example.org`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// Parses a bare name (`example.org`) or a trust domain ID (`spiffe://example.org`, no path).
    pub fn parse(input: &str) -> Result<Self, SpiffeIdError> {
        if input.is_empty() {
            return Err(SpiffeIdError::MissingTrustDomain);
        }
        if input.contains("://") {
            let id = SpiffeId::parse(input)?;
            if !id.path().is_empty() {
                return Err(SpiffeIdError::BadTrustDomainChar {
                    found: '/',
                    at: id.trust_domain().as_str().len(),
                    hint: " (a trust domain ID must not have a path)",
                });
            }
            return Ok(id.trust_domain);
        }
        validate_trust_domain_name(input)?;
        Ok(Self(input.to_owned()))
    }

    /// The bare name, e.g. `example.org`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The trust domain's own ID, `spiffe://example.org`, as used for bundle map keys.
    pub fn id_string(&self) -> String {
        format!("{SCHEME_PREFIX}{}", self.0)
    }

    /// The SPIFFE ID `spiffe://<td><path>`; the path is validated.
    pub fn id_with_path(&self, path: &str) -> Result<SpiffeId, SpiffeIdError> {
        validate_path(path)?;
        let id = SpiffeId { trust_domain: self.clone(), path: path.to_owned() };
        id.check_len()?;
        Ok(id)
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TrustDomain {
    type Err = SpiffeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A SPIFFE ID: `spiffe://<trust domain><path>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpiffeId {
    trust_domain: TrustDomain,
    path: String,
}

impl SpiffeId {
    /// Parses and validates a SPIFFE ID URI.
    pub fn parse(input: &str) -> Result<Self, SpiffeIdError> {
        if input.is_empty() {
            return Err(SpiffeIdError::Empty);
        }
        let rest = input.strip_prefix(SCHEME_PREFIX).ok_or(SpiffeIdError::WrongScheme)?;
        let (td, path) = match rest.find(['/', '?', '#']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
            // A query or fragment right after the trust domain is reported by the char check.
            Some(_) | None => (rest, ""),
        };
        validate_trust_domain_name(td)?;
        validate_path(path)?;
        let id = Self { trust_domain: TrustDomain(td.to_owned()), path: path.to_owned() };
        id.check_len()?;
        Ok(id)
    }

    /// Builds `spiffe://<td><path>`, validating the path.
    pub fn from_parts(trust_domain: &TrustDomain, path: &str) -> Result<Self, SpiffeIdError> {
        trust_domain.id_with_path(path)
    }

    fn check_len(&self) -> Result<(), SpiffeIdError> {
        let len = SCHEME_PREFIX.len() + self.trust_domain.0.len() + self.path.len();
        if len > MAX_SPIFFE_ID_LEN {
            return Err(SpiffeIdError::TooLong { len });
        }
        Ok(())
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The path, empty for a trust domain ID, otherwise starting with `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether this is a trust domain ID (no path), as a signing authority's ID must be.
    pub fn is_trust_domain_id(&self) -> bool {
        self.path.is_empty()
    }

    /// Whether this ID belongs to `td`.
    pub fn is_member_of(&self, td: &TrustDomain) -> bool {
        &self.trust_domain == td
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME_PREFIX}{}{}", self.trust_domain.0, self.path)
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for SpiffeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SpiffeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for TrustDomain {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TrustDomain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let id = SpiffeId::parse("spiffe://example.org/ns/prod/sa-1").unwrap();
        assert_eq!(id.trust_domain().as_str(), "example.org");
        assert_eq!(id.path(), "/ns/prod/sa-1");
        assert_eq!(id.to_string(), "spiffe://example.org/ns/prod/sa-1");
        let td = SpiffeId::parse("spiffe://example.org").unwrap();
        assert!(td.is_trust_domain_id());
        assert_eq!(TrustDomain::parse("spiffe://example.org").unwrap().as_str(), "example.org");
        assert_eq!(TrustDomain::parse("example.org").unwrap().id_string(), "spiffe://example.org");
    }

    #[test]
    fn go_spiffe_wording() {
        let cases = [
            ("", "cannot be empty"),
            ("http://example.org", "scheme is missing or invalid"),
            ("spiffe://", "trust domain is missing"),
            (
                "spiffe://Example.org/a",
                "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores",
            ),
            (
                "spiffe://example.org/a b",
                "path segment characters are limited to letters, numbers, dots, dashes, and underscores",
            ),
            ("spiffe://example.org/a//b", "path cannot contain empty segments"),
            ("spiffe://example.org/a/..", "path cannot contain dot segments"),
            ("spiffe://example.org/a/", "path cannot have a trailing slash"),
        ];
        for (input, want) in cases {
            let err = SpiffeId::parse(input).unwrap_err();
            assert_eq!(err.go_spiffe_message(), want, "{input:?}");
        }
        assert_eq!(validate_path("a").unwrap_err().go_spiffe_message(), "path must have a leading slash");
    }

    #[test]
    fn odd_but_valid_segments() {
        for p in ["/.path", "/..path", "/...", "/a_b-c.D9", "/A"] {
            SpiffeId::parse(&format!("spiffe://td{p}")).unwrap();
        }
        SpiffeId::parse("spiffe://1.2.3.4/x").unwrap();
        SpiffeId::parse("spiffe://under_score-dash.9/x").unwrap();
    }

    /// One row per rule of SPIFFE-ID.md, with the error it must produce.
    #[test]
    fn conformance_table() {
        use SpiffeIdError as E;
        type Check = fn(&E) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| *e == E::Empty),
            ("http://example.org/a", |e| *e == E::WrongScheme),
            ("SPIFFE://example.org/a", |e| *e == E::WrongScheme),
            ("spiffe:/example.org/a", |e| *e == E::WrongScheme),
            ("example.org/a", |e| *e == E::WrongScheme),
            ("spiffe://", |e| *e == E::MissingTrustDomain),
            ("spiffe:///path", |e| *e == E::MissingTrustDomain),
            ("spiffe://Example.org/a", |e| matches!(e, E::BadTrustDomainChar { found: 'E', at: 0, .. })),
            ("spiffe://example.org:8080/a", |e| matches!(e, E::BadTrustDomainChar { found: ':', at: 11, .. })),
            ("spiffe://user@example.org/a", |e| matches!(e, E::BadTrustDomainChar { found: '@', .. })),
            ("spiffe://exa%41mple.org/a", |e| matches!(e, E::BadTrustDomainChar { found: '%', .. })),
            ("spiffe://example.org?x=1", |e| matches!(e, E::BadTrustDomainChar { found: '?', .. })),
            ("spiffe://example.org#frag", |e| matches!(e, E::BadTrustDomainChar { found: '#', .. })),
            ("spiffe://[::1]/a", |e| matches!(e, E::BadTrustDomainChar { found: '[', .. })),
            ("spiffe://exämple.org/a", |e| matches!(e, E::BadTrustDomainChar { found: 'ä', .. })),
            ("spiffe://example.org/a?x=1", |e| matches!(e, E::BadPathChar { found: '?', .. })),
            ("spiffe://example.org/a#f", |e| matches!(e, E::BadPathChar { found: '#', .. })),
            ("spiffe://example.org/a%20b", |e| matches!(e, E::BadPathChar { found: '%', at: 2, .. })),
            ("spiffe://example.org/a b", |e| matches!(e, E::BadPathChar { found: ' ', .. })),
            ("spiffe://example.org/a//b", |e| *e == E::EmptySegment),
            ("spiffe://example.org//", |e| *e == E::EmptySegment),
            ("spiffe://example.org/./a", |e| *e == E::DotSegment),
            ("spiffe://example.org/a/..", |e| *e == E::DotSegment),
            ("spiffe://example.org/a/", |e| *e == E::TrailingSlash),
            ("spiffe://example.org/", |e| *e == E::TrailingSlash),
        ];
        for (input, check) in cases {
            let err = SpiffeId::parse(input).expect_err(input);
            assert!(check(&err), "{input}: unexpected error {err:?}");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn length_limits() {
        let td = "a".repeat(255);
        SpiffeId::parse(&format!("spiffe://{td}/x")).unwrap();
        let err = SpiffeId::parse(&format!("spiffe://{}/x", "a".repeat(256))).unwrap_err();
        assert_eq!(err, SpiffeIdError::TrustDomainTooLong { len: 256 });
        // spiffe:// (9) + td (255) + path: exactly 2048 is fine, 2049 is not.
        let path_len = 2048 - 9 - 255;
        let ok = format!("spiffe://{td}/{}", "p".repeat(path_len - 1));
        assert_eq!(ok.len(), 2048);
        SpiffeId::parse(&ok).unwrap();
        let too_long = format!("{ok}q");
        assert_eq!(SpiffeId::parse(&too_long).unwrap_err(), SpiffeIdError::TooLong { len: 2049 });
    }

    #[test]
    fn error_messages_say_what_to_fix() {
        let msg = SpiffeId::parse("spiffe://Example.org/a").unwrap_err().to_string();
        assert!(msg.contains("lowercase") && msg.contains("'E'") && msg.contains("use lower case"), "{msg}");
        let msg = SpiffeId::parse("spiffe://example.org:443/a").unwrap_err().to_string();
        assert!(msg.contains("a port is not allowed"), "{msg}");
    }

    #[test]
    fn trust_domain_parse_rejects_ids_with_paths() {
        assert!(TrustDomain::parse("spiffe://example.org/a").is_err());
        assert!(TrustDomain::parse("").is_err());
        assert!(TrustDomain::parse("EXAMPLE").is_err());
    }

    #[test]
    fn path_helper() {
        let td = TrustDomain::parse("example.org").unwrap();
        assert_eq!(td.id_with_path("/a/b").unwrap().to_string(), "spiffe://example.org/a/b");
        assert_eq!(td.id_with_path("a").unwrap_err(), SpiffeIdError::NoLeadingSlash);
        assert_eq!(td.id_with_path("").unwrap().to_string(), "spiffe://example.org");
    }
}
