//! JSON Web Keys as SPIFFE bundles carry them, and their conversion to and from the
//! SubjectPublicKeyInfo DER that SPIRE stores ("PKIX bytes").

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ECDSA_P521_SHA512_FIXED, ParsedPublicKey,
    RSA_PKCS1_2048_8192_SHA256, VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Why a key could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwkError {
    /// Not SubjectPublicKeyInfo DER.
    #[error("public key is not valid SubjectPublicKeyInfo DER: {0}")]
    Spki(String),
    /// A key type we cannot represent.
    #[error("unsupported public key type: {0}")]
    Unsupported(String),
    /// A required JWK parameter is absent.
    #[error("JWK is missing the {0:?} parameter")]
    Missing(&'static str),
    /// A parameter is not base64url.
    #[error("JWK parameter {0:?} is not valid base64url")]
    Base64(&'static str),
    /// The parameters do not form a valid key.
    #[error("JWK parameters do not form a valid {0} public key")]
    InvalidKey(&'static str),
}

/// One key of a JWK set, with the members SPIFFE bundles use, in go-jose's field order so that our
/// JSON reads like SPIRE's.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Jwk {
    /// `x509-svid` or `jwt-svid` in a SPIFFE bundle; absent in a standard JWKS.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub public_key_use: Option<String>,
    /// `EC` or `RSA`.
    #[serde(default)]
    pub kty: String,
    /// Key ID; required for JWT authorities, forbidden for X.509 ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Curve for EC keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA exponent, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Certificate chain, standard base64 DER; exactly one for X.509 authorities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x5c: Option<Vec<String>>,
}

const P256_OID: &str = "1.2.840.10045.3.1.7";
const P384_OID: &str = "1.3.132.0.34";
const P521_OID: &str = "1.3.132.0.35";

/// The kind of a public key, enough to pick a JWS algorithm family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicKeyKind {
    /// ECDSA on P-256.
    EcP256,
    /// ECDSA on P-384.
    EcP384,
    /// ECDSA on P-521.
    EcP521,
    /// RSA of any size.
    Rsa,
}

/// What kind of key a SubjectPublicKeyInfo holds.
pub fn public_key_kind(spki_der: &[u8]) -> Result<PublicKeyKind, JwkError> {
    let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der).map_err(|e| JwkError::Spki(e.to_string()))?;
    match spki.parsed().map_err(|e| JwkError::Spki(e.to_string()))? {
        PublicKey::RSA(_) => Ok(PublicKeyKind::Rsa),
        PublicKey::EC(_) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            match curve.as_str() {
                P256_OID => Ok(PublicKeyKind::EcP256),
                P384_OID => Ok(PublicKeyKind::EcP384),
                P521_OID => Ok(PublicKeyKind::EcP521),
                other => Err(JwkError::Unsupported(format!("EC curve {other}"))),
            }
        }
        _ => Err(JwkError::Unsupported(spki.algorithm.algorithm.to_id_string())),
    }
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len().saturating_sub(1));
    &b[first..]
}

impl Jwk {
    /// The JWK of a SubjectPublicKeyInfo (EC P-256/384/521 or RSA), without `use`, `kid` or `x5c`.
    pub fn from_spki(spki_der: &[u8]) -> Result<Self, JwkError> {
        let kind = public_key_kind(spki_der)?;
        let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der).map_err(|e| JwkError::Spki(e.to_string()))?;
        let b64 = |b: &[u8]| Some(URL_SAFE_NO_PAD.encode(b));
        match spki.parsed().map_err(|e| JwkError::Spki(e.to_string()))? {
            PublicKey::RSA(rsa) => Ok(Self {
                kty: "RSA".into(),
                n: b64(strip_leading_zeros(rsa.modulus)),
                e: b64(strip_leading_zeros(rsa.exponent)),
                ..Self::default()
            }),
            PublicKey::EC(point) => {
                let data = point.data();
                if data.first() != Some(&4) || data.len() % 2 != 1 {
                    return Err(JwkError::Unsupported("compressed EC point".into()));
                }
                let half = (data.len() - 1) / 2;
                let crv = match kind {
                    PublicKeyKind::EcP256 => "P-256",
                    PublicKeyKind::EcP384 => "P-384",
                    _ => "P-521",
                };
                Ok(Self {
                    kty: "EC".into(),
                    crv: Some(crv.into()),
                    x: b64(&data[1..=half]),
                    y: b64(&data[1 + half..]),
                    ..Self::default()
                })
            }
            _ => Err(JwkError::Unsupported("key type".into())),
        }
    }

    /// The SubjectPublicKeyInfo DER of this key; the key is validated on the way.
    pub fn to_spki(&self) -> Result<Vec<u8>, JwkError> {
        let decode = |name: &'static str, v: &Option<String>| -> Result<Vec<u8>, JwkError> {
            let v = v.as_deref().ok_or(JwkError::Missing(name))?;
            URL_SAFE_NO_PAD.decode(v).map_err(|_| JwkError::Base64(name))
        };
        match self.kty.as_str() {
            "EC" => {
                let (alg, size): (&'static dyn VerificationAlgorithm, usize) = match self.crv.as_deref() {
                    Some("P-256") => (&ECDSA_P256_SHA256_FIXED, 32),
                    Some("P-384") => (&ECDSA_P384_SHA384_FIXED, 48),
                    Some("P-521") => (&ECDSA_P521_SHA512_FIXED, 66),
                    Some(other) => return Err(JwkError::Unsupported(format!("EC curve {other}"))),
                    None => return Err(JwkError::Missing("crv")),
                };
                let (x, y) = (decode("x", &self.x)?, decode("y", &self.y)?);
                if x.len() != size || y.len() != size {
                    return Err(JwkError::InvalidKey("EC"));
                }
                let point: Vec<u8> = [&[4u8][..], &x, &y].concat();
                let key = ParsedPublicKey::new(alg, point).map_err(|_| JwkError::InvalidKey("EC"))?;
                Ok(key.as_der().map_err(|_| JwkError::InvalidKey("EC"))?.as_ref().to_vec())
            }
            "RSA" => {
                let (n, e) = (decode("n", &self.n)?, decode("e", &self.e)?);
                let pkcs1 = yasna::construct_der(|w| {
                    w.write_sequence(|w| {
                        w.next().write_bigint_bytes(&n, true);
                        w.next().write_bigint_bytes(&e, true);
                    })
                });
                let key = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pkcs1)
                    .map_err(|_| JwkError::InvalidKey("RSA"))?;
                Ok(key.as_der().map_err(|_| JwkError::InvalidKey("RSA"))?.as_ref().to_vec())
            }
            other => Err(JwkError::Unsupported(format!("kty {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyType, PrivateKey};

    #[test]
    fn spki_round_trips_through_jwk() {
        for t in KeyType::ALL {
            let spki = PrivateKey::generate(t).unwrap().public_key_der();
            let jwk = Jwk::from_spki(&spki).unwrap();
            assert_eq!(jwk.to_spki().unwrap(), spki, "{t}");
        }
    }

    #[test]
    fn rejects_bad_parameters() {
        let spki = PrivateKey::generate(KeyType::EcP256).unwrap().public_key_der();
        let mut jwk = Jwk::from_spki(&spki).unwrap();
        jwk.x = Some(URL_SAFE_NO_PAD.encode([7u8; 32]));
        assert_eq!(jwk.to_spki().unwrap_err(), JwkError::InvalidKey("EC"));
        jwk.crv = None;
        assert_eq!(jwk.to_spki().unwrap_err(), JwkError::Missing("crv"));
        jwk.kty = "oct".into();
        assert!(matches!(jwk.to_spki().unwrap_err(), JwkError::Unsupported(_)));
    }
}
