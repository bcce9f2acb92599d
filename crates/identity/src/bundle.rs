//! Trust bundles: the X.509 and JWT authorities of one trust domain.
//!
//! Three renderings matter: the SPIFFE bundle (a JWK set with `use`, `spiffe_sequence` and
//! `spiffe_refresh_hint`, served to federated peers and by `bundle show -format spiffe`), PEM (the
//! CLI's default and the agent's `trust_bundle_path`), and the standard JWKS that the Workload API's
//! FetchJWTBundles returns (JWT keys only, no `use`).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::jwk::{Jwk, JwkError};
use crate::spiffe_id::TrustDomain;
use crate::x509::{CertParseError, certs_from_pem, certs_to_pem, parse_cert};

/// `use` of X.509 authorities in a SPIFFE bundle.
pub const USE_X509_SVID: &str = "x509-svid";
/// `use` of JWT authorities in a SPIFFE bundle.
pub const USE_JWT_SVID: &str = "jwt-svid";

/// Why a bundle could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Not JSON of the expected shape.
    #[error("bundle is not a valid JWK set: {0}")]
    Json(String),
    /// The mandatory `keys` member is absent.
    #[error("bundle has no \"keys\" member")]
    MissingKeys,
    /// An `x509-svid` key's certificate is unreadable.
    #[error("x509-svid key {index}: {reason}")]
    X509Authority {
        /// Position in `keys`.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A `jwt-svid` key without `kid`.
    #[error("jwt-svid key {0} has no \"kid\"; JWT authorities must have a key ID")]
    MissingKeyId(usize),
    /// Two `jwt-svid` keys share a `kid`.
    #[error("jwt-svid key ID {0:?} appears more than once")]
    DuplicateKeyId(String),
    /// A `jwt-svid` key's parameters are unusable.
    #[error("jwt-svid key {index}: {source}")]
    JwtAuthority {
        /// Position in `keys`.
        index: usize,
        /// What is wrong.
        source: JwkError,
    },
    /// PEM input without certificates.
    #[error("invalid PEM bundle: {0}")]
    Pem(#[from] CertParseError),
}

/// A public key that signs JWT-SVIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtAuthority {
    /// The `kid` tokens name it by.
    pub key_id: String,
    /// SubjectPublicKeyInfo DER.
    pub public_key_der: Vec<u8>,
    /// Unix seconds after which SPIRE stops trusting it; 0 when unknown.
    pub expires_at: i64,
}

/// The authorities of one trust domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    trust_domain: TrustDomain,
    x509_authorities: Vec<Vec<u8>>,
    jwt_authorities: Vec<JwtAuthority>,
    /// `spiffe_refresh_hint`, seconds.
    pub refresh_hint: Option<u64>,
    /// `spiffe_sequence`; must change whenever the content does.
    pub sequence_number: u64,
}

#[derive(Serialize, Deserialize)]
struct Document {
    #[serde(default)]
    keys: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spiffe_refresh_hint: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spiffe_sequence: Option<u64>,
}

impl Bundle {
    /// An empty bundle.
    pub fn new(trust_domain: TrustDomain) -> Self {
        Self {
            trust_domain,
            x509_authorities: Vec::new(),
            jwt_authorities: Vec::new(),
            refresh_hint: None,
            sequence_number: 0,
        }
    }

    /// The bundle's trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// X.509 authorities, DER.
    pub fn x509_authorities(&self) -> &[Vec<u8>] {
        &self.x509_authorities
    }

    /// JWT authorities.
    pub fn jwt_authorities(&self) -> &[JwtAuthority] {
        &self.jwt_authorities
    }

    /// The JWT authority with key ID `kid`.
    pub fn jwt_authority(&self, kid: &str) -> Option<&JwtAuthority> {
        self.jwt_authorities.iter().find(|a| a.key_id == kid)
    }

    /// Adds an X.509 authority unless already present; returns whether it was added.
    pub fn add_x509_authority(&mut self, der: Vec<u8>) -> Result<bool, CertParseError> {
        parse_cert(&der)?;
        if self.x509_authorities.contains(&der) {
            return Ok(false);
        }
        self.x509_authorities.push(der);
        Ok(true)
    }

    /// Adds or replaces the JWT authority with the same key ID; returns whether anything changed.
    pub fn add_jwt_authority(&mut self, authority: JwtAuthority) -> Result<bool, JwkError> {
        Jwk::from_spki(&authority.public_key_der)?;
        match self.jwt_authorities.iter_mut().find(|a| a.key_id == authority.key_id) {
            Some(existing) if *existing == authority => Ok(false),
            Some(existing) => {
                *existing = authority;
                Ok(true)
            }
            None => {
                self.jwt_authorities.push(authority);
                Ok(true)
            }
        }
    }

    /// Reads a SPIFFE bundle. Keys with an unknown or missing `kty` or `use`, and `x509-svid` keys with
    /// no `x5c`, are skipped as SPIFFE_Trust_Domain_and_Bundle.md asks; malformed known keys are errors.
    pub fn from_spiffe_json(trust_domain: TrustDomain, json: &[u8]) -> Result<Self, BundleError> {
        let doc: Document = serde_json::from_slice(json).map_err(|e| BundleError::Json(e.to_string()))?;
        let keys = doc.keys.ok_or(BundleError::MissingKeys)?;
        let mut bundle = Self::new(trust_domain);
        bundle.refresh_hint = doc.spiffe_refresh_hint;
        bundle.sequence_number = doc.spiffe_sequence.unwrap_or(0);
        for (index, value) in keys.into_iter().enumerate() {
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                return Err(BundleError::Json(format!("key {index} is not a JWK object")));
            };
            if !matches!(jwk.kty.as_str(), "EC" | "RSA") {
                continue;
            }
            match jwk.public_key_use.as_deref() {
                Some(USE_X509_SVID) => {
                    let Some(first) = jwk.x5c.as_ref().and_then(|c| c.first()) else { continue };
                    let der = STANDARD
                        .decode(first)
                        .map_err(|_| BundleError::X509Authority { index, reason: "x5c is not valid base64".into() })?;
                    bundle
                        .add_x509_authority(der)
                        .map_err(|e| BundleError::X509Authority { index, reason: e.to_string() })?;
                }
                Some(USE_JWT_SVID) => {
                    let key_id = jwk.kid.clone().filter(|k| !k.is_empty()).ok_or(BundleError::MissingKeyId(index))?;
                    if bundle.jwt_authority(&key_id).is_some() {
                        return Err(BundleError::DuplicateKeyId(key_id));
                    }
                    let public_key_der = jwk.to_spki().map_err(|source| BundleError::JwtAuthority { index, source })?;
                    bundle.jwt_authorities.push(JwtAuthority { key_id, public_key_der, expires_at: 0 });
                }
                _ => continue,
            }
        }
        Ok(bundle)
    }

    fn x509_jwks(&self) -> impl Iterator<Item = Jwk> + '_ {
        self.x509_authorities.iter().filter_map(|der| {
            let cert = parse_cert(der).ok()?;
            let mut jwk = Jwk::from_spki(cert.public_key().raw).ok()?;
            jwk.public_key_use = Some(USE_X509_SVID.into());
            jwk.x5c = Some(vec![STANDARD.encode(der)]);
            Some(jwk)
        })
    }

    fn jwt_jwks(&self, with_use: bool) -> impl Iterator<Item = Jwk> + '_ {
        self.jwt_authorities.iter().filter_map(move |a| {
            let mut jwk = Jwk::from_spki(&a.public_key_der).ok()?;
            jwk.kid = Some(a.key_id.clone());
            jwk.public_key_use = with_use.then(|| USE_JWT_SVID.into());
            Some(jwk)
        })
    }

    fn spiffe_document(&self) -> Document {
        let keys = self.x509_jwks().chain(self.jwt_jwks(true)).map(|k| serde_json::to_value(k).expect("plain struct"));
        Document {
            keys: Some(keys.collect()),
            spiffe_refresh_hint: self.refresh_hint,
            spiffe_sequence: Some(self.sequence_number).filter(|&s| s != 0),
        }
    }

    /// The SPIFFE bundle, compact JSON.
    pub fn to_spiffe_json(&self) -> String {
        serde_json::to_string(&self.spiffe_document()).expect("plain struct")
    }

    /// The SPIFFE bundle indented by four spaces, as `spire-server bundle show -format spiffe` prints it.
    pub fn to_spiffe_json_pretty(&self) -> String {
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        self.spiffe_document().serialize(&mut ser).expect("plain struct");
        String::from_utf8(out).expect("JSON is UTF-8")
    }

    /// The standard JWKS of the JWT authorities (no `use`, no SPIFFE members), as FetchJWTBundles
    /// returns it: the bytes SPIRE's agent sends (Go's `json.MarshalIndent` with four spaces, each
    /// key's members in go-jose's order `kty`, `kid`, `crv`, `x`, `y`), since `spire-agent api fetch
    /// jwt` prints them as they come.
    pub fn to_jwt_jwks(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Jwks {
            keys: Vec<Jwk>,
        }
        let doc = Jwks { keys: self.jwt_jwks(false).collect() };
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        doc.serialize(&mut ser).expect("plain struct");
        out
    }

    /// A bundle of X.509 authorities from PEM `CERTIFICATE` blocks.
    pub fn from_pem(trust_domain: TrustDomain, text: &str) -> Result<Self, BundleError> {
        let mut bundle = Self::new(trust_domain);
        for der in certs_from_pem(text)? {
            bundle.add_x509_authority(der)?;
        }
        Ok(bundle)
    }

    /// The X.509 authorities as PEM.
    pub fn to_pem(&self) -> String {
        certs_to_pem(&self.x509_authorities)
    }

    /// The X.509 authorities concatenated in DER, as the Workload API's bundle fields carry them.
    pub fn x509_authorities_der(&self) -> Vec<u8> {
        crate::x509::join_der_chain(&self.x509_authorities)
    }
}

/// Bundles by trust domain: the own one plus federated ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleSet(BTreeMap<TrustDomain, Bundle>);

impl BundleSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the bundle of its trust domain.
    pub fn insert(&mut self, bundle: Bundle) {
        self.0.insert(bundle.trust_domain.clone(), bundle);
    }

    /// The bundle of `td`.
    pub fn get(&self, td: &TrustDomain) -> Option<&Bundle> {
        self.0.get(td)
    }

    /// All bundles, ordered by trust domain.
    pub fn iter(&self) -> impl Iterator<Item = &Bundle> {
        self.0.values()
    }
}

impl From<Bundle> for BundleSet {
    fn from(bundle: Bundle) -> Self {
        let mut set = Self::new();
        set.insert(bundle);
        set
    }
}

impl FromIterator<Bundle> for BundleSet {
    fn from_iter<I: IntoIterator<Item = Bundle>>(iter: I) -> Self {
        let mut set = Self::new();
        for b in iter {
            set.insert(b);
        }
        set
    }
}
