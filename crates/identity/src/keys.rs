//! Private keys of the four types SPIRE supports, held as PKCS#8 DER.
//!
//! PKCS#8 is what the Workload API hands to workloads and what key managers store, so it is the one
//! representation; everything else (rcgen signers, JWT signing keys, public keys) is derived from it.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair,
    RsaKeyPair,
};

/// Why a key could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key type name is not one SPIRE knows.
    #[error("key type {0:?} is not supported: use one of ec-p256, ec-p384, rsa-2048 or rsa-4096")]
    UnknownType(String),
    /// The bytes are not a PKCS#8 key of a supported type.
    #[error("private key is not an unencrypted PKCS#8 EC P-256, EC P-384, RSA-2048 or RSA-4096 key")]
    Unsupported,
    /// An RSA key of a size we do not issue with.
    #[error("RSA key of {0} bits is not supported: use 2048 or 4096 bits")]
    RsaSize(usize),
    /// The PEM text had no `PRIVATE KEY` block.
    #[error("no PEM \"PRIVATE KEY\" block found: keys must be PKCS#8")]
    NoPem,
    /// The crypto library failed to generate a key.
    #[error("key generation failed")]
    Generation,
    /// A key manager's public key does not fit the type it was asked for.
    #[error("public key is not a {key_type} key: {reason}")]
    PublicKey {
        /// The type asked for.
        key_type: KeyType,
        /// What is wrong.
        reason: String,
    },
    /// The key lives in a key manager that signs with it but never hands it out.
    #[error("the {0} key is held by the key manager and cannot be exported: a local key is needed here")]
    NotExportable(KeyType),
}

/// The key types of SPIRE's `ca_key_type`, `jwt_key_type` and `workload_x509_svid_key_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyType {
    /// NIST P-256 ECDSA (SPIRE's default).
    #[default]
    EcP256,
    /// NIST P-384 ECDSA.
    EcP384,
    /// RSA with a 2048-bit modulus.
    Rsa2048,
    /// RSA with a 4096-bit modulus.
    Rsa4096,
}

impl KeyType {
    /// Every supported type.
    pub const ALL: [KeyType; 4] = [Self::EcP256, Self::EcP384, Self::Rsa2048, Self::Rsa4096];

    /// SPIRE's name for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EcP256 => "ec-p256",
            Self::EcP384 => "ec-p384",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa4096 => "rsa-4096",
        }
    }

    /// Whether this is an RSA type.
    pub fn is_rsa(self) -> bool {
        matches!(self, Self::Rsa2048 | Self::Rsa4096)
    }

    /// The ECDSA algorithm for EC types; `None` for RSA.
    fn ecdsa(self) -> Option<&'static EcdsaSigningAlgorithm> {
        match self {
            Self::EcP256 => Some(&ECDSA_P256_SHA256_ASN1_SIGNING),
            Self::EcP384 => Some(&ECDSA_P384_SHA384_ASN1_SIGNING),
            Self::Rsa2048 | Self::Rsa4096 => None,
        }
    }

    /// The certificate signature algorithm rcgen uses with keys of this type.
    pub(crate) fn rcgen_algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Self::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Self::Rsa2048 | Self::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| KeyError::UnknownType(s.to_owned()))
    }
}

/// A private key in PKCS#8 DER form, with its type known.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey {
    key_type: KeyType,
    pkcs8: Vec<u8>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("PrivateKey").field("key_type", &self.key_type).finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Generates a fresh key of `key_type`.
    pub fn generate(key_type: KeyType) -> Result<Self, KeyError> {
        let pkcs8 = match key_type.ecdsa() {
            Some(alg) => EcdsaKeyPair::generate_pkcs8(alg, &aws_lc_rs::rand::SystemRandom::new())
                .map_err(|_| KeyError::Generation)?
                .as_ref()
                .to_vec(),
            None => {
                let size = if key_type == KeyType::Rsa2048 { KeySize::Rsa2048 } else { KeySize::Rsa4096 };
                let pair = RsaKeyPair::generate(size).map_err(|_| KeyError::Generation)?;
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = pair.as_der().map_err(|_| KeyError::Generation)?;
                der.as_ref().to_vec()
            }
        };
        Ok(Self { key_type, pkcs8 })
    }

    /// Reads an unencrypted PKCS#8 DER key and works out its type.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let key_type = if EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der).is_ok() {
            KeyType::EcP256
        } else if EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, der).is_ok() {
            KeyType::EcP384
        } else if let Ok(rsa) = RsaKeyPair::from_pkcs8(der) {
            match rsa.public_modulus_len() * 8 {
                2048 => KeyType::Rsa2048,
                4096 => KeyType::Rsa4096,
                bits => return Err(KeyError::RsaSize(bits)),
            }
        } else {
            return Err(KeyError::Unsupported);
        };
        Ok(Self { key_type, pkcs8: der.to_vec() })
    }

    /// Reads the first `PRIVATE KEY` PEM block.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let block = pem::parse_many(text)
            .map_err(|_| KeyError::NoPem)?
            .into_iter()
            .find(|p| p.tag() == "PRIVATE KEY")
            .ok_or(KeyError::NoPem)?;
        Self::from_pkcs8_der(block.contents())
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// PKCS#8 DER, as the Workload API's `x509_svid_key` carries it.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn to_pem(&self) -> String {
        crate::pem_encode("PRIVATE KEY", &self.pkcs8)
    }

    /// The public key as SubjectPublicKeyInfo DER (SPIRE's "PKIX bytes").
    pub fn public_key_der(&self) -> Vec<u8> {
        // The key parsed when it was made or read, so parsing again cannot fail.
        match self.key_type.ecdsa() {
            Some(alg) => {
                let pair = EcdsaKeyPair::from_pkcs8(alg, &self.pkcs8).expect("validated key");
                pair.public_key().as_der().expect("encodable key").as_ref().to_vec()
            }
            None => {
                let pair = RsaKeyPair::from_pkcs8(&self.pkcs8).expect("validated key");
                pair.public_key().as_der().expect("encodable key").as_ref().to_vec()
            }
        }
    }

    /// An rcgen signer for certificates and CSRs.
    pub(crate) fn rcgen_key_pair(&self) -> rcgen::KeyPair {
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from(self.pkcs8.as_slice());
        rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, self.key_type.rcgen_algorithm()).expect("validated key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_type() {
        for t in KeyType::ALL {
            let key = PrivateKey::generate(t).unwrap();
            assert_eq!(key.key_type(), t);
            let back = PrivateKey::from_pkcs8_der(key.pkcs8_der()).unwrap();
            assert_eq!(back, key);
            assert_eq!(PrivateKey::from_pem(&key.to_pem()).unwrap(), key);
            assert!(!key.public_key_der().is_empty());
            assert_eq!(t.as_str().parse::<KeyType>().unwrap(), t);
        }
    }

    #[test]
    fn rejects_garbage_and_unknown_names() {
        assert_eq!(PrivateKey::from_pkcs8_der(b"nope").unwrap_err(), KeyError::Unsupported);
        assert_eq!(PrivateKey::from_pem("hello").unwrap_err(), KeyError::NoPem);
        let err = "ec-p521".parse::<KeyType>().unwrap_err();
        assert!(err.to_string().contains("ec-p256, ec-p384, rsa-2048 or rsa-4096"));
    }

    #[test]
    fn debug_hides_material() {
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        assert_eq!(format!("{key:?}"), "PrivateKey { key_type: EcP256, .. }");
    }
}
