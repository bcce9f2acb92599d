//! The two JSON documents, byte for byte as SPIRE writes them: Go's `json.MarshalIndent` with two
//! spaces (HTML-safe string escaping, no trailing newline), and go-jose's member order for keys.
//! Relying parties cache and compare these, so we write them by hand rather than through a
//! serializer whose escaping and spacing differ from Go's.

use std::fmt::Write;

use spire_identity::jwk::Jwk;

/// The `use` SPIRE sets on keys with `set_key_use`.
pub const KEY_USE: &str = "sig";

/// The JWS algorithms SPIRE advertises.
pub const SIGNING_ALGS: [&str; 3] = ["RS256", "ES256", "ES384"];

/// The OIDC discovery document.
pub fn discovery(issuer: &str, jwks_uri: &str) -> String {
    let mut out = String::from("{\n");
    let _ = writeln!(out, "  \"issuer\": {},", go_string(issuer));
    let _ = writeln!(out, "  \"jwks_uri\": {},", go_string(jwks_uri));
    out.push_str("  \"authorization_endpoint\": \"\",\n");
    out.push_str("  \"response_types_supported\": [\n    \"id_token\"\n  ],\n");
    out.push_str("  \"subject_types_supported\": [\n    \"public\"\n  ],\n");
    out.push_str("  \"id_token_signing_alg_values_supported\": [\n");
    let algs: Vec<String> = SIGNING_ALGS.iter().map(|a| format!("    \"{a}\"")).collect();
    out.push_str(&algs.join(",\n"));
    out.push_str("\n  ]\n}");
    out
}

/// The JWKS; an empty key list is `null`, as Go writes a nil slice.
pub fn jwks(keys: &[Jwk], set_key_use: bool) -> String {
    if keys.is_empty() {
        return "{\n  \"keys\": null\n}".to_owned();
    }
    let rendered: Vec<String> = keys.iter().map(|k| key(k, set_key_use)).collect();
    format!("{{\n  \"keys\": [\n{}\n  ]\n}}", rendered.join(",\n"))
}

/// The JWS algorithm SPIRE derives from a key, or none (SPIRE logs an error and omits `alg`).
pub fn algorithm(jwk: &Jwk) -> Result<&'static str, String> {
    match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => {
            let size = jwk.n.as_deref().map_or(0, |n| n.len() * 3 / 4);
            if size < 256 { Err(format!("unsupported RSA key size: {size}")) } else { Ok("RS256") }
        }
        ("EC", Some("P-256")) => Ok("ES256"),
        ("EC", Some("P-384")) => Ok("ES384"),
        ("EC", Some("P-521")) => Err("unable to determine signature algorithm for EC public key size 521".into()),
        (kty, _) => Err(format!("unable to determine signature algorithm for public key type {kty}")),
    }
}

/// One key, members in go-jose's order: use, kty, kid, crv, alg, x, y, n, e.
fn key(jwk: &Jwk, set_key_use: bool) -> String {
    let mut members: Vec<(&str, String)> = Vec::new();
    if set_key_use {
        members.push(("use", KEY_USE.to_owned()));
    }
    members.push(("kty", jwk.kty.clone()));
    let optional = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    if let Some(kid) = optional(&jwk.kid) {
        members.push(("kid", kid));
    }
    if let Some(crv) = optional(&jwk.crv) {
        members.push(("crv", crv));
    }
    if let Ok(alg) = algorithm(jwk) {
        members.push(("alg", alg.to_owned()));
    }
    for (name, value) in [("x", &jwk.x), ("y", &jwk.y), ("n", &jwk.n), ("e", &jwk.e)] {
        if let Some(v) = optional(value) {
            members.push((name, v));
        }
    }
    let lines: Vec<String> = members.iter().map(|(k, v)| format!("      \"{k}\": {}", go_string(v))).collect();
    format!("    {{\n{}\n    }}", lines.join(",\n"))
}

/// A JSON string as Go's encoding/json writes it: `<`, `>`, `&`, U+2028 and U+2029 escaped as
/// `\u00XX`, short escapes for `\b \f \n \r \t`, other control characters as `\u00XX`.
pub fn go_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_document_matches_spire() {
        let expected = "{\n  \"issuer\": \"https://oidc.example.org\",\n  \"jwks_uri\": \"https://oidc.example.org/keys\",\n  \"authorization_endpoint\": \"\",\n  \"response_types_supported\": [\n    \"id_token\"\n  ],\n  \"subject_types_supported\": [\n    \"public\"\n  ],\n  \"id_token_signing_alg_values_supported\": [\n    \"RS256\",\n    \"ES256\",\n    \"ES384\"\n  ]\n}";
        assert_eq!(discovery("https://oidc.example.org", "https://oidc.example.org/keys"), expected);
    }

    #[test]
    fn jwks_members_in_go_jose_order() {
        let jwk = Jwk {
            kty: "EC".into(),
            kid: Some("k1".into()),
            crv: Some("P-256".into()),
            x: Some("X".into()),
            y: Some("Y".into()),
            ..Jwk::default()
        };
        let expected = "{\n  \"keys\": [\n    {\n      \"use\": \"sig\",\n      \"kty\": \"EC\",\n      \"kid\": \"k1\",\n      \"crv\": \"P-256\",\n      \"alg\": \"ES256\",\n      \"x\": \"X\",\n      \"y\": \"Y\"\n    }\n  ]\n}";
        assert_eq!(jwks(std::slice::from_ref(&jwk), true), expected);
        assert!(!jwks(&[jwk], false).contains("\"use\""));
        assert_eq!(jwks(&[], false), "{\n  \"keys\": null\n}");
    }

    #[test]
    fn strings_are_escaped_as_go_does() {
        assert_eq!(go_string("a<b>&\"\\\n\u{1}\u{8}\u{2028}é"), r#""a\u003cb\u003e\u0026\"\\\n\u0001\b\u2028é""#);
    }
}
