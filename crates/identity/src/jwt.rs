//! JWT-SVIDs: signing as SPIRE does and validating per JWT-SVID.md.
//!
//! Signing goes through `jsonwebtoken` with a local key; a key held by a key manager signs the same
//! header and claims through its [`RemoteSigner`](crate::signing::RemoteSigner). Verification uses aws-lc-rs directly because the spec's
//! allow-list includes ES512, which `jsonwebtoken` lacks, and because every rule must report its own
//! error rather than a generic "invalid token".

use std::time::{Duration, SystemTime};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ECDSA_P521_SHA512_FIXED, RSA_PKCS1_2048_8192_SHA256,
    RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_2048_8192_SHA512, RSA_PSS_2048_8192_SHA256, RSA_PSS_2048_8192_SHA384,
    RSA_PSS_2048_8192_SHA512, UnparsedPublicKey, VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::bundle::BundleSet;
use crate::jwk::{PublicKeyKind, public_key_kind};
use crate::keys::KeyType;
use crate::signing::{HashAlgorithm, SignError, SignerOpts, SigningKey, ecdsa_der_to_fixed};
use crate::spiffe_id::{SpiffeId, SpiffeIdError};

/// Clock skew tolerated on `exp` and `nbf` (go-jose's default, which SPIRE inherits).
pub const LEEWAY: Duration = Duration::from_secs(60);

/// The JWS algorithms JWT-SVID.md allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
pub enum JwtAlgorithm {
    /// ECDSA P-256 SHA-256.
    ES256,
    /// ECDSA P-384 SHA-384.
    ES384,
    /// ECDSA P-521 SHA-512 (validation only: we issue no P-521 keys).
    ES512,
    /// RSASSA-PKCS1-v1_5 SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 SHA-512.
    RS512,
    /// RSASSA-PSS SHA-256.
    PS256,
    /// RSASSA-PSS SHA-384.
    PS384,
    /// RSASSA-PSS SHA-512.
    PS512,
}

impl JwtAlgorithm {
    /// Parses a header `alg`; `None` for anything outside the allow-list (`none`, `HS256`, `EdDSA`...).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "ES256" => Self::ES256,
            "ES384" => Self::ES384,
            "ES512" => Self::ES512,
            "RS256" => Self::RS256,
            "RS384" => Self::RS384,
            "RS512" => Self::RS512,
            "PS256" => Self::PS256,
            "PS384" => Self::PS384,
            "PS512" => Self::PS512,
            _ => return None,
        })
    }

    /// The algorithm SPIRE signs with for a key type (ES256, ES384 or RS256).
    pub fn for_key_type(key_type: KeyType) -> Self {
        match key_type {
            KeyType::EcP256 => Self::ES256,
            KeyType::EcP384 => Self::ES384,
            KeyType::Rsa2048 | KeyType::Rsa4096 => Self::RS256,
        }
    }

    fn key_kind_matches(self, kind: PublicKeyKind) -> bool {
        match self {
            Self::ES256 => kind == PublicKeyKind::EcP256,
            Self::ES384 => kind == PublicKeyKind::EcP384,
            Self::ES512 => kind == PublicKeyKind::EcP521,
            _ => kind == PublicKeyKind::Rsa,
        }
    }

    fn verification(self) -> &'static dyn VerificationAlgorithm {
        match self {
            Self::ES256 => &ECDSA_P256_SHA256_FIXED,
            Self::ES384 => &ECDSA_P384_SHA384_FIXED,
            Self::ES512 => &ECDSA_P521_SHA512_FIXED,
            Self::RS256 => &RSA_PKCS1_2048_8192_SHA256,
            Self::RS384 => &RSA_PKCS1_2048_8192_SHA384,
            Self::RS512 => &RSA_PKCS1_2048_8192_SHA512,
            Self::PS256 => &RSA_PSS_2048_8192_SHA256,
            Self::PS384 => &RSA_PSS_2048_8192_SHA384,
            Self::PS512 => &RSA_PSS_2048_8192_SHA512,
        }
    }

    fn to_jsonwebtoken(self) -> Option<jsonwebtoken::Algorithm> {
        use jsonwebtoken::Algorithm as A;
        Some(match self {
            Self::ES256 => A::ES256,
            Self::ES384 => A::ES384,
            Self::ES512 => return None,
            Self::RS256 => A::RS256,
            Self::RS384 => A::RS384,
            Self::RS512 => A::RS512,
            Self::PS256 => A::PS256,
            Self::PS384 => A::PS384,
            Self::PS512 => A::PS512,
        })
    }
}

/// Why a JWT-SVID could not be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtSignError {
    /// No audience given.
    #[error("audience must be specified")]
    NoAudience,
    /// The algorithm does not fit the key.
    #[error("algorithm {alg:?} cannot be used with a {key_type} key")]
    AlgorithmMismatch {
        /// Requested algorithm.
        alg: JwtAlgorithm,
        /// The signing key's type.
        key_type: KeyType,
    },
    /// The signing key expires before the token would start.
    #[error("the JWT signing key has expired")]
    KeyExpired,
    /// `jsonwebtoken` refused.
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    /// The key manager holding the key failed to sign.
    #[error("signing failed: {0}")]
    Signer(#[from] SignError),
    /// The header or claims could not be serialized.
    #[error("signing failed: {0}")]
    Json(#[from] serde_json::Error),
}

/// A JWT signing key (local or held by a key manager) with its `kid`.
#[derive(Debug, Clone)]
pub struct JwtSigner {
    key_id: String,
    key: SigningKey,
    alg: JwtAlgorithm,
    not_after: Option<SystemTime>,
}

impl JwtSigner {
    /// A signer using SPIRE's algorithm for the key type.
    pub fn new(key_id: impl Into<String>, key: impl Into<SigningKey>) -> Self {
        let key = key.into();
        let alg = JwtAlgorithm::for_key_type(key.key_type());
        Self { key_id: key_id.into(), key, alg, not_after: None }
    }

    /// Picks another algorithm (PS256 and friends for RSA keys).
    pub fn with_algorithm(mut self, alg: JwtAlgorithm) -> Result<Self, JwtSignError> {
        let fits = match self.key.key_type() {
            KeyType::EcP256 => alg == JwtAlgorithm::ES256,
            KeyType::EcP384 => alg == JwtAlgorithm::ES384,
            KeyType::Rsa2048 | KeyType::Rsa4096 => alg.key_kind_matches(PublicKeyKind::Rsa),
        };
        if !fits {
            return Err(JwtSignError::AlgorithmMismatch { alg, key_type: self.key.key_type() });
        }
        self.alg = alg;
        Ok(self)
    }

    /// Caps every token's `exp` at the key's own expiry.
    pub fn with_not_after(mut self, not_after: SystemTime) -> Self {
        self.not_after = Some(not_after);
        self
    }

    /// The key ID written into `kid`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }
}

/// What a JWT-SVID says.
#[derive(Debug, Clone)]
pub struct JwtSvidParams<'a> {
    /// `sub`.
    pub spiffe_id: &'a SpiffeId,
    /// `aud`, written as a list even with one value.
    pub audience: &'a [String],
    /// `iat`.
    pub now: SystemTime,
    /// Lifetime; `exp = iat + ttl`, capped at the signer's expiry.
    pub ttl: Duration,
    /// `iss`, when SPIRE's `jwt_issuer` is set.
    pub issuer: Option<&'a str>,
    /// `jti`, when the entry asks for one.
    pub jti: Option<&'a str>,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: String,
    aud: &'a [String],
    exp: i64,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<&'a str>,
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Signs a JWT-SVID: header `alg`, `kid`, `typ: JWT`; claims `sub`, `aud`, `exp`, `iat`, and `iss` and
/// `jti` when given.
pub fn sign_jwt_svid(params: &JwtSvidParams<'_>, signer: &JwtSigner) -> Result<String, JwtSignError> {
    sign_claims(&claims(params, signer)?, signer)
}

/// The claims [`sign_jwt_svid`] would sign, as a JSON object: what CredentialComposer plugins are
/// given to change before [`sign_jwt_claims`] signs them.
pub fn jwt_svid_claims(
    params: &JwtSvidParams<'_>,
    signer: &JwtSigner,
) -> Result<serde_json::Map<String, serde_json::Value>, JwtSignError> {
    match serde_json::to_value(claims(params, signer)?)? {
        serde_json::Value::Object(map) => Ok(map),
        _ => unreachable!("claims serialize as an object"),
    }
}

/// Signs `claims` as they are (composed ones), with [`sign_jwt_svid`]'s header.
pub fn sign_jwt_claims(
    claims: &serde_json::Map<String, serde_json::Value>,
    signer: &JwtSigner,
) -> Result<String, JwtSignError> {
    sign_claims(claims, signer)
}

fn claims<'a>(params: &JwtSvidParams<'a>, signer: &JwtSigner) -> Result<Claims<'a>, JwtSignError> {
    if params.audience.is_empty() || params.audience.iter().any(String::is_empty) {
        return Err(JwtSignError::NoAudience);
    }
    let mut exp = params.now + params.ttl;
    if let Some(cap) = signer.not_after {
        if cap <= params.now {
            return Err(JwtSignError::KeyExpired);
        }
        exp = exp.min(cap);
    }
    Ok(Claims {
        sub: params.spiffe_id.to_string(),
        aud: params.audience,
        exp: unix(exp),
        iat: unix(params.now),
        iss: params.issuer,
        jti: params.jti,
    })
}

fn sign_claims<T: Serialize>(claims: &T, signer: &JwtSigner) -> Result<String, JwtSignError> {
    let alg = signer
        .alg
        .to_jsonwebtoken()
        .ok_or(JwtSignError::AlgorithmMismatch { alg: signer.alg, key_type: signer.key.key_type() })?;
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some(signer.key_id.clone());
    header.typ = Some("JWT".into());
    let local = match &signer.key {
        SigningKey::Local(local) => local,
        SigningKey::Remote(_) => return sign_remote(&header, claims, signer),
    };
    let key = if local.key_type().is_rsa() {
        jsonwebtoken::EncodingKey::from_rsa_pem(local.to_pem().as_bytes())?
    } else {
        jsonwebtoken::EncodingKey::from_ec_der(local.pkcs8_der())
    };
    Ok(jsonwebtoken::encode(&header, claims, &key)?)
}

/// The JWS compact serialization `jsonwebtoken::encode` makes (the same header and claims JSON,
/// base64url without padding), signed by the key manager: ECDSA signatures turned from ASN.1 DER
/// into JWS's fixed-size `r || s`.
fn sign_remote<T: Serialize>(
    header: &jsonwebtoken::Header,
    claims: &T,
    signer: &JwtSigner,
) -> Result<String, JwtSignError> {
    use HashAlgorithm::{Sha256, Sha384, Sha512};
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header)?),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?)
    );
    let (opts, fixed_size) = match signer.alg {
        JwtAlgorithm::ES256 => (SignerOpts::Hash(Sha256), Some(32)),
        JwtAlgorithm::ES384 => (SignerOpts::Hash(Sha384), Some(48)),
        JwtAlgorithm::ES512 => (SignerOpts::Hash(Sha512), Some(66)),
        JwtAlgorithm::RS256 => (SignerOpts::Hash(Sha256), None),
        JwtAlgorithm::RS384 => (SignerOpts::Hash(Sha384), None),
        JwtAlgorithm::RS512 => (SignerOpts::Hash(Sha512), None),
        JwtAlgorithm::PS256 => (SignerOpts::pss(Sha256), None),
        JwtAlgorithm::PS384 => (SignerOpts::pss(Sha384), None),
        JwtAlgorithm::PS512 => (SignerOpts::pss(Sha512), None),
    };
    let signature = signer.key.sign(opts, message.as_bytes())?;
    let signature = match fixed_size {
        Some(size) => ecdsa_der_to_fixed(&signature, size)?,
        None => signature,
    };
    Ok(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// A fresh key ID: 32 random characters of `[a-zA-Z0-9]`, as SPIRE makes them.
pub fn random_key_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut out = String::with_capacity(32);
    while out.len() < 32 {
        let mut b = [0u8; 64];
        aws_lc_rs::rand::fill(&mut b).expect("system randomness");
        // 62 * 4 = 248: reject the top bytes so that every character is equally likely.
        out.extend(b.iter().filter(|&&x| x < 248).map(|&x| ALPHABET[usize::from(x % 62)] as char).take(32 - out.len()));
    }
    out
}

/// Why a JWT-SVID was rejected; one variant per rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtSvidError {
    /// Not three base64url parts separated by dots.
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    /// The header has no `alg`.
    #[error("token header has no \"alg\"")]
    MissingAlgorithm,
    /// `alg` outside the JWT-SVID allow-list.
    #[error("unsupported token signature algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// A header member JWT-SVID.md does not describe.
    #[error("token header has unexpected member {0:?}: only alg, kid and typ are allowed")]
    UnexpectedHeader(String),
    /// `typ` other than `JWT` or `JOSE`.
    #[error("token header \"typ\" must be \"JWT\" or \"JOSE\", got {0:?}")]
    BadType(String),
    /// No `kid`.
    #[error("token header is missing key ID")]
    MissingKeyId,
    /// No `sub`.
    #[error("token is missing subject")]
    MissingSubject,
    /// `sub` is not a SPIFFE ID.
    #[error("token has an invalid subject claim: {0}")]
    BadSubject(SpiffeIdError),
    /// No bundle for the subject's trust domain.
    #[error("no keys found for trust domain {0:?}")]
    NoBundle(String),
    /// `kid` not in the bundle.
    #[error("key {kid:?} not found in the bundle of trust domain {trust_domain:?}")]
    UnknownKeyId {
        /// The token's key ID.
        kid: String,
        /// Where it was looked for.
        trust_domain: String,
    },
    /// `alg` does not fit the key named by `kid`.
    #[error("token algorithm {0:?} does not match the type of the signing key")]
    AlgorithmKeyMismatch(String),
    /// The signature does not verify.
    #[error("unable to verify token signature")]
    BadSignature,
    /// No `aud`, or an empty one.
    #[error("token has no audience: \"aud\" must hold at least one value")]
    MissingAudience,
    /// None of the token's audiences is the expected one.
    #[error("expected audience in {expected:?} (audience={actual:?})")]
    AudienceMismatch {
        /// What the validator expected.
        expected: Vec<String>,
        /// What the token has.
        actual: Vec<String>,
    },
    /// No `exp`.
    #[error("token is missing expiry claim \"exp\"")]
    MissingExpiry,
    /// `exp` has passed.
    #[error("token has expired")]
    Expired,
    /// `nbf` is still ahead.
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    /// A claim has the wrong JSON type.
    #[error("token claim {0:?} has the wrong type")]
    ClaimType(&'static str),
}

/// A validated JWT-SVID.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedJwtSvid {
    /// `sub`.
    pub spiffe_id: SpiffeId,
    /// `aud`, always as a list.
    pub audience: Vec<String>,
    /// `exp`, Unix seconds.
    pub expiry: i64,
    /// Every claim, with `aud` normalised to a list (what ValidateJWTSVID returns).
    pub claims: Map<String, Value>,
}

fn b64_json(part: &str, what: &'static str) -> Result<Map<String, Value>, JwtSvidError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| JwtSvidError::Malformed(what))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(JwtSvidError::Malformed(what)),
    }
}

fn numeric(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, JwtSvidError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).map(Some).ok_or(JwtSvidError::ClaimType(name))
        }
        Some(_) => Err(JwtSvidError::ClaimType(name)),
    }
}

/// Validates a JWT-SVID against the bundles at time `now`: every header and claim rule of
/// JWT-SVID.md, the signature with the key named by `kid` in the bundle of the subject's trust
/// domain, and that every one of `expected_audience` is in `aud`.
pub fn validate_jwt_svid<S: AsRef<str>>(
    token: &str,
    bundles: &BundleSet,
    expected_audience: &[S],
    now: SystemTime,
) -> Result<ValidatedJwtSvid, JwtSvidError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtSvidError::Malformed(
            "a JWT-SVID must be three dot-separated parts (JWS compact serialization)",
        ));
    };
    let header = b64_json(h, "header is not base64url-encoded JSON")?;
    let mut claims = b64_json(c, "claims are not base64url-encoded JSON")?;
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtSvidError::Malformed("signature is not base64url"))?;

    let alg_name = header.get("alg").and_then(Value::as_str).ok_or(JwtSvidError::MissingAlgorithm)?;
    let alg = JwtAlgorithm::from_name(alg_name).ok_or_else(|| JwtSvidError::UnsupportedAlgorithm(alg_name.into()))?;
    if let Some(extra) = header.keys().find(|k| !matches!(k.as_str(), "alg" | "kid" | "typ")) {
        return Err(JwtSvidError::UnexpectedHeader(extra.clone()));
    }
    if let Some(typ) = header.get("typ") {
        match typ.as_str() {
            Some("JWT" | "JOSE") => {}
            _ => return Err(JwtSvidError::BadType(typ.to_string())),
        }
    }
    let kid = header.get("kid").and_then(Value::as_str).filter(|k| !k.is_empty()).ok_or(JwtSvidError::MissingKeyId)?;

    let sub = claims.get("sub").and_then(Value::as_str).ok_or(JwtSvidError::MissingSubject)?;
    let spiffe_id = SpiffeId::parse(sub).map_err(JwtSvidError::BadSubject)?;
    let td = spiffe_id.trust_domain();
    let bundle = bundles.get(td).ok_or_else(|| JwtSvidError::NoBundle(td.to_string()))?;
    let authority = bundle
        .jwt_authority(kid)
        .ok_or_else(|| JwtSvidError::UnknownKeyId { kid: kid.into(), trust_domain: td.to_string() })?;
    let kind = public_key_kind(&authority.public_key_der).map_err(|_| JwtSvidError::BadSignature)?;
    if !alg.key_kind_matches(kind) {
        return Err(JwtSvidError::AlgorithmKeyMismatch(alg_name.into()));
    }
    let signed = &token[..h.len() + 1 + c.len()];
    UnparsedPublicKey::new(alg.verification(), &authority.public_key_der)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| JwtSvidError::BadSignature)?;

    let audience: Vec<String> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or(JwtSvidError::ClaimType("aud")))
            .collect::<Result<_, _>>()?,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(JwtSvidError::ClaimType("aud")),
    };
    if audience.is_empty() {
        return Err(JwtSvidError::MissingAudience);
    }
    if !expected_audience.iter().all(|want| audience.iter().any(|a| a == want.as_ref())) {
        return Err(JwtSvidError::AudienceMismatch {
            expected: expected_audience.iter().map(|a| a.as_ref().to_owned()).collect(),
            actual: audience,
        });
    }
    let now = unix(now);
    let leeway = i64::try_from(LEEWAY.as_secs()).unwrap_or(0);
    let expiry = numeric(&claims, "exp")?.ok_or(JwtSvidError::MissingExpiry)?;
    if now > expiry.saturating_add(leeway) {
        return Err(JwtSvidError::Expired);
    }
    if let Some(nbf) = numeric(&claims, "nbf")?
        && now.saturating_add(leeway) < nbf
    {
        return Err(JwtSvidError::NotYetValid);
    }
    claims.insert("aud".into(), Value::Array(audience.iter().cloned().map(Value::String).collect()));
    Ok(ValidatedJwtSvid { spiffe_id, audience, expiry, claims })
}
