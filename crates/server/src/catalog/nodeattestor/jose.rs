//! Compact JWS verification for the cloud attestors (`gcp_iit`, `azure_msi`), which check tokens a
//! cloud provider signed with keys it publishes. The rules and error texts are go-jose v4's, which
//! SPIRE's plugins use and quote in their refusals: the header's `alg` must be in the plugin's
//! allow-list, the key is looked up by the header's `kid`, and the claims are validated with
//! go-jose's `Expected` (any one of the audiences, `nbf`/`exp`/`iat` within a leeway).
//!
//! Verification is aws-lc-rs over the raw bytes, as the JWT-SVID validator does, so that each rule
//! reports go-jose's own message.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use spire_identity::jwk::{PublicKeyKind, public_key_kind};

/// go-jose's default leeway for `Claims.Validate`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// A JWS signature algorithm go-jose knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 SHA-512.
    RS512,
    /// ECDSA P-256 SHA-256.
    ES256,
    /// ECDSA P-384 SHA-384.
    ES384,
    /// ECDSA P-521 SHA-512.
    ES512,
    /// RSASSA-PSS SHA-256.
    PS256,
    /// RSASSA-PSS SHA-384.
    PS384,
    /// RSASSA-PSS SHA-512.
    PS512,
}

impl Alg {
    /// Every algorithm `azure_msi` allows (SPIRE's list).
    pub const ALL: &'static [Alg] =
        &[Alg::RS256, Alg::RS384, Alg::RS512, Alg::ES256, Alg::ES384, Alg::ES512, Alg::PS256, Alg::PS384, Alg::PS512];

    fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::ES512 => "ES512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.name() == name)
    }

    fn fits(self, kind: PublicKeyKind) -> bool {
        match self {
            Self::ES256 => kind == PublicKeyKind::EcP256,
            Self::ES384 => kind == PublicKeyKind::EcP384,
            Self::ES512 => kind == PublicKeyKind::EcP521,
            _ => kind == PublicKeyKind::Rsa,
        }
    }

    fn verification(self) -> &'static dyn VerificationAlgorithm {
        match self {
            Self::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Self::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Self::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Self::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Self::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
            Self::ES512 => &signature::ECDSA_P521_SHA512_FIXED,
            Self::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Self::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Self::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        }
    }
}

/// A published verification key: its key ID and SubjectPublicKeyInfo DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// `kid`.
    pub kid: String,
    /// The key.
    pub spki_der: Vec<u8>,
}

/// go-jose's errors, with its texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoseError {
    /// Not three dot-separated parts.
    #[error("go-jose/go-jose: compact JWS format must have three parts")]
    Format,
    /// A part is not base64url, or the header not a JSON object.
    #[error("{0}")]
    Malformed(String),
    /// `alg` outside the allow-list.
    #[error("go-jose/go-jose: unexpected signature algorithm {found:?}; expected {expected}")]
    UnexpectedAlgorithm {
        /// The header's `alg`.
        found: String,
        /// The allow-list, as Go prints a slice of quoted strings.
        expected: String,
    },
    /// The header has no `kid`, so no key of the set is chosen (go-jose then tries the set itself
    /// as a key).
    #[error("go-jose/go-jose: unsupported key type/format")]
    UnsupportedKey,
    /// No key in the set has the header's `kid`.
    #[error("go-jose/go-jose: JWK with matching kid not found in JWK Set")]
    KidNotFound,
    /// The signature does not verify with the key, or the key does not fit `alg`.
    #[error("go-jose/go-jose: error in cryptographic primitive")]
    Crypto,
    /// The payload is not a JSON object.
    #[error("{0}")]
    Claims(String),
    /// None of the expected audiences is in `aud`.
    #[error("go-jose/go-jose/jwt: validation failed, invalid audience claim (aud)")]
    Audience,
    /// `nbf` is ahead.
    #[error("go-jose/go-jose/jwt: validation failed, token not valid yet (nbf)")]
    NotValidYet,
    /// `exp` has passed.
    #[error("go-jose/go-jose/jwt: validation failed, token is expired (exp)")]
    Expired,
    /// `iat` is ahead (go-jose's typo kept).
    #[error("go-jose/go-jose/jwt: validation field, token issued in the future (iat)")]
    IssuedInTheFuture,
}

/// A parsed, not yet verified, compact JWS.
#[derive(Debug, Clone)]
pub struct Jws {
    alg: Alg,
    kid: String,
    signed: String,
    signature: Vec<u8>,
    payload: Vec<u8>,
}

/// Parses `token` as go-jose's `jwt.ParseSigned(token, allowed)`.
pub fn parse(token: &str, allowed: &[Alg]) -> Result<Jws, JoseError> {
    let parts: Vec<&str> = token.split('.').collect();
    let [h, p, s] = parts.as_slice() else { return Err(JoseError::Format) };
    let b64 = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map_err(|e| JoseError::Malformed(format!("illegal base64 data: {e}")))
    };
    let header_bytes = b64(h)?;
    let payload = b64(p)?;
    let signature = b64(s)?;
    let header: Map<String, Value> =
        serde_json::from_slice(&header_bytes).map_err(|e| JoseError::Malformed(e.to_string()))?;
    let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or_default();
    let alg =
        Alg::from_name(alg_name).filter(|a| allowed.contains(a)).ok_or_else(|| JoseError::UnexpectedAlgorithm {
            found: alg_name.to_owned(),
            expected: format!("[{}]", allowed.iter().map(|a| format!("{:?}", a.name())).collect::<Vec<_>>().join(" ")),
        })?;
    let kid = header.get("kid").and_then(Value::as_str).unwrap_or_default().to_owned();
    Ok(Jws { alg, kid, signed: format!("{h}.{p}"), signature, payload })
}

impl Jws {
    /// The header's `kid` (empty when absent).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Verifies with the key of the set whose `kid` is the header's (go-jose's `Claims(jwks)`), and
    /// returns the claims.
    pub fn verify_with_set(&self, keys: &[PublicKey]) -> Result<Map<String, Value>, JoseError> {
        if self.kid.is_empty() {
            return Err(JoseError::UnsupportedKey);
        }
        let key = keys.iter().find(|k| k.kid == self.kid).ok_or(JoseError::KidNotFound)?;
        self.verify_with(&key.spki_der)
    }

    /// Verifies with one key and returns the claims.
    pub fn verify_with(&self, spki_der: &[u8]) -> Result<Map<String, Value>, JoseError> {
        let kind = public_key_kind(spki_der).map_err(|_| JoseError::Crypto)?;
        if !self.alg.fits(kind) {
            return Err(JoseError::Crypto);
        }
        UnparsedPublicKey::new(self.alg.verification(), spki_der)
            .verify(self.signed.as_bytes(), &self.signature)
            .map_err(|_| JoseError::Crypto)?;
        serde_json::from_slice(&self.payload).map_err(|e| JoseError::Claims(e.to_string()))
    }

    /// The payload bytes (the claims set), for typed decoding after [`Self::verify_with`].
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
}

/// What go-jose's `jwt.Expected` holds that the attestors set.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// `AnyAudience`: one of these must be in `aud`.
    pub any_audience: &'a [&'a str],
    /// `Time`: the validation time.
    pub time: SystemTime,
    /// The leeway on the time claims.
    pub leeway: Duration,
}

/// go-jose's `Claims.ValidateWithLeeway`, in its order: audience, then `nbf`, `exp`, `iat`.
pub fn validate(claims: &Map<String, Value>, expected: &Expected<'_>) -> Result<(), JoseError> {
    if !expected.any_audience.is_empty() {
        let audience: Vec<&str> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !expected.any_audience.iter().any(|want| audience.contains(want)) {
            return Err(JoseError::Audience);
        }
    }
    let now = expected.time.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let leeway = expected.leeway.as_secs() as i64;
    let numeric = |name: &str| match claims.get(name) {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        _ => None,
    };
    if numeric("nbf").is_some_and(|nbf| now + leeway < nbf) {
        return Err(JoseError::NotValidYet);
    }
    if numeric("exp").is_some_and(|exp| now - leeway > exp) {
        return Err(JoseError::Expired);
    }
    if numeric("iat").is_some_and(|iat| now + leeway < iat) {
        return Err(JoseError::IssuedInTheFuture);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(v: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    #[test]
    fn parse_refusals_are_go_joses() {
        assert_eq!(
            parse("a.b", &[Alg::RS256]).unwrap_err().to_string(),
            "go-jose/go-jose: compact JWS format must have three parts"
        );
        let token = format!("{}.{}.{}", b64(br#"{"alg":"HS256"}"#), b64(b"{}"), b64(b"sig"));
        assert_eq!(
            parse(&token, &[Alg::RS256]).unwrap_err().to_string(),
            "go-jose/go-jose: unexpected signature algorithm \"HS256\"; expected [\"RS256\"]"
        );
        let token = format!("{}.{}.{}", b64(br#"{"alg":"ES256","kid":"k"}"#), b64(b"{}"), b64(b"sig"));
        let jws = parse(&token, Alg::ALL).unwrap();
        assert_eq!(jws.kid(), "k");
        assert_eq!(jws.verify_with_set(&[]).unwrap_err(), JoseError::KidNotFound);
        let no_kid = format!("{}.{}.{}", b64(br#"{"alg":"RS256"}"#), b64(b"{}"), b64(b"sig"));
        assert_eq!(
            parse(&no_kid, Alg::ALL).unwrap().verify_with_set(&[]).unwrap_err().to_string(),
            "go-jose/go-jose: unsupported key type/format"
        );
        let key = PublicKey { kid: "k".into(), spki_der: b"not a key".to_vec() };
        assert_eq!(jws.verify_with_set(&[key]).unwrap_err(), JoseError::Crypto);
    }

    #[test]
    fn claims_validation_follows_go_jose() {
        let claims = |v: Value| v.as_object().unwrap().clone();
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let e = Expected { any_audience: &["a"], time: now, leeway: DEFAULT_LEEWAY };
        assert!(validate(&claims(serde_json::json!({"aud": "a", "exp": 1000})), &e).is_ok());
        assert!(validate(&claims(serde_json::json!({"aud": ["b", "a"], "exp": 950})), &e).is_ok());
        assert_eq!(validate(&claims(serde_json::json!({"aud": "b"})), &e), Err(JoseError::Audience));
        assert_eq!(validate(&claims(serde_json::json!({"aud": "a", "exp": 939})), &e), Err(JoseError::Expired));
        assert_eq!(validate(&claims(serde_json::json!({"aud": "a", "nbf": 1061})), &e), Err(JoseError::NotValidYet));
        assert_eq!(
            validate(&claims(serde_json::json!({"aud": "a", "iat": 1061})), &e),
            Err(JoseError::IssuedInTheFuture)
        );
    }
}
