//! The TPM 2.0 structures a `tpm_devid` payload carries, read with `tpm2-protocol`: a key's
//! `TPMT_PUBLIC` (and its TPM name), the `TPMS_ATTEST` of TPM2_Certify and a `TPMT_SIGNATURE`.
//! Everything here reads untrusted bytes and never panics.

use aws_lc_rs::digest;
use aws_lc_rs::signature;
use tpm2_protocol::data::{
    TpmAlgId, TpmEccCurve, TpmSt, TpmaObject, TpmsAttest, TpmtPublic, TpmtSignature, TpmuAsymScheme, TpmuAttest,
    TpmuPublicId, TpmuPublicParms, TpmuSignature, TpmuSymKeyBits,
};
use tpm2_protocol::{TpmMarshal, TpmUnmarshal, TpmWriter};

/// Bytes that are not the TPM structure they should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TpmError {
    /// The marshaling library refused them.
    #[error("decoding {what}: {reason}")]
    Malformed {
        /// The structure.
        what: &'static str,
        /// tpm2-protocol's message.
        reason: String,
    },
    /// Bytes left after the structure.
    #[error("decoding {0}: trailing data")]
    Trailing(&'static str),
    /// A well-formed structure this plugin does not handle.
    #[error("{0}")]
    Unsupported(String),
}

fn decode<T: TpmUnmarshal>(what: &'static str, bytes: &[u8]) -> Result<T, TpmError> {
    let (value, rest) = T::unmarshal(bytes).map_err(|e| TpmError::Malformed { what, reason: e.to_string() })?;
    if !rest.is_empty() {
        return Err(TpmError::Trailing(what));
    }
    Ok(value)
}

/// A hash algorithm a TPM names or signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    /// The algorithm for a TPM algorithm ID.
    pub fn from_tpm(alg: TpmAlgId) -> Result<Self, TpmError> {
        match alg {
            TpmAlgId::Sha1 => Ok(Self::Sha1),
            TpmAlgId::Sha256 => Ok(Self::Sha256),
            TpmAlgId::Sha384 => Ok(Self::Sha384),
            TpmAlgId::Sha512 => Ok(Self::Sha512),
            other => Err(TpmError::Unsupported(format!("unsupported hash algorithm 0x{:04x}", other.value()))),
        }
    }

    /// The TPM algorithm ID.
    pub fn tpm_id(self) -> u16 {
        match self {
            Self::Sha1 => 0x0004,
            Self::Sha256 => 0x000b,
            Self::Sha384 => 0x000c,
            Self::Sha512 => 0x000d,
        }
    }

    /// The aws-lc-rs digest.
    pub fn digest_alg(self) -> &'static digest::Algorithm {
        match self {
            Self::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => &digest::SHA256,
            Self::Sha384 => &digest::SHA384,
            Self::Sha512 => &digest::SHA512,
        }
    }

    /// `H(data)`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest_alg(), data).as_ref().to_vec()
    }
}

/// The key inside a `TPMT_PUBLIC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    /// RSA: modulus and public exponent (0 in the structure means 65537).
    Rsa {
        /// The modulus, big-endian.
        modulus: Vec<u8>,
        /// The exponent.
        exponent: u32,
        /// The symmetric key size of a storage key (an EK's AES-128: 128), 0 if none.
        symmetric_bits: u16,
    },
    /// ECC: curve and point.
    Ecc {
        /// The TPM curve ID.
        curve: u16,
        /// X, big-endian.
        x: Vec<u8>,
        /// Y, big-endian.
        y: Vec<u8>,
    },
}

/// A parsed `TPMT_PUBLIC`.
#[derive(Debug, Clone)]
pub struct Public {
    /// The structure, re-marshaled (its canonical bytes, over which the name is computed).
    pub bytes: Vec<u8>,
    /// The name algorithm.
    pub name_alg: TpmAlgId,
    /// The object attributes.
    pub attributes: TpmaObject,
    /// The signing scheme's hash, if the key has a scheme.
    pub scheme_hash: Option<TpmAlgId>,
    /// The signing scheme (`TPM_ALG_RSASSA`, `TPM_ALG_ECDSA`, ...), `TPM_ALG_NULL` if none.
    pub scheme: TpmAlgId,
    /// The key.
    pub key: KeyMaterial,
}

impl Public {
    /// Reads a `TPMT_PUBLIC` (no size prefix) of an RSA or ECC key.
    pub fn parse(bytes: &[u8]) -> Result<Self, TpmError> {
        let public: TpmtPublic = decode("TPMT_PUBLIC", bytes)?;
        let mut buf = vec![0u8; bytes.len() + 16];
        let mut writer = TpmWriter::new(&mut buf);
        public.marshal(&mut writer).map_err(|e| TpmError::Malformed { what: "TPMT_PUBLIC", reason: e.to_string() })?;
        let len = writer.len();
        buf.truncate(len);
        let scheme_of = |s: TpmuAsymScheme| match s {
            TpmuAsymScheme::Hash(h) => Some(h.hash_alg),
            TpmuAsymScheme::Null => None,
        };
        let (key, scheme, scheme_hash) = match (public.parameters, &public.unique) {
            (TpmuPublicParms::Rsa(p), TpmuPublicId::Rsa(n)) => {
                let symmetric_bits = match p.symmetric.key_bits {
                    TpmuSymKeyBits::Aes(bits) => bits.value(),
                    _ => 0,
                };
                let key = KeyMaterial::Rsa { modulus: n.to_vec(), exponent: p.exponent.value(), symmetric_bits };
                (key, p.scheme.scheme, scheme_of(p.scheme.details))
            }
            (TpmuPublicParms::Ecc(p), TpmuPublicId::Ecc(point)) => {
                let key = KeyMaterial::Ecc { curve: p.curve_id.value(), x: point.x.to_vec(), y: point.y.to_vec() };
                (key, p.scheme.scheme, scheme_of(p.scheme.details))
            }
            _ => {
                return Err(TpmError::Unsupported(format!(
                    "unsupported key type 0x{:04x}",
                    public.object_type.value()
                )));
            }
        };
        Ok(Self {
            bytes: buf,
            name_alg: public.name_alg,
            attributes: public.object_attributes,
            scheme_hash,
            scheme,
            key,
        })
    }

    /// The TPM name: the name algorithm's ID then its digest of the structure.
    pub fn name(&self) -> Result<Vec<u8>, TpmError> {
        name_with(HashAlg::from_tpm(self.name_alg)?, &self.bytes)
    }

    /// Whether the key may sign.
    pub fn can_sign(&self) -> bool {
        self.attributes.contains(TpmaObject::SIGN_ENCRYPT)
    }

    /// Whether this is an attestation key whose TPM2_Certify can be trusted: a restricted signer
    /// (the TPM refuses to sign outside data that starts as a `TPMS_ATTEST`, so the key cannot forge
    /// one), not a decryption key, generated inside the TPM and unable to leave it.
    pub fn is_resident_restricted_signer(&self) -> bool {
        let required = TpmaObject::SIGN_ENCRYPT
            | TpmaObject::RESTRICTED
            | TpmaObject::FIXED_TPM
            | TpmaObject::FIXED_PARENT
            | TpmaObject::SENSITIVE_DATA_ORIGIN;
        self.attributes.contains(required) && !self.attributes.contains(TpmaObject::DECRYPT)
    }

    /// Whether this is a signing key the TPM will never let out (fixedTPM): a key that was imported,
    /// or that could be duplicated, is not.
    pub fn is_fixed_signer(&self) -> bool {
        self.attributes.contains(TpmaObject::SIGN_ENCRYPT | TpmaObject::FIXED_TPM)
    }

    /// The `TPMA_OBJECT` bits, for messages.
    pub fn attribute_bits(&self) -> u32 {
        self.attributes.bits()
    }

    /// The RSA public exponent as a certificate carries it.
    pub fn rsa_exponent(&self) -> Option<u32> {
        match self.key {
            KeyMaterial::Rsa { exponent, .. } => Some(if exponent == 0 { 65537 } else { exponent }),
            KeyMaterial::Ecc { .. } => None,
        }
    }

    /// The uncompressed SEC1 point of a NIST-curve key.
    pub fn ecc_point(&self) -> Option<Vec<u8>> {
        match &self.key {
            KeyMaterial::Ecc { curve, x, y } => {
                let len = curve_len(*curve)?;
                let mut out = vec![4u8];
                out.extend(left_pad(x, len)?);
                out.extend(left_pad(y, len)?);
                Some(out)
            }
            KeyMaterial::Rsa { .. } => None,
        }
    }
}

fn curve_len(curve: u16) -> Option<usize> {
    match curve {
        c if c == TpmEccCurve::NistP256.value() => Some(32),
        c if c == TpmEccCurve::NistP384.value() => Some(48),
        c if c == TpmEccCurve::NistP521.value() => Some(66),
        _ => None,
    }
}

fn left_pad(v: &[u8], len: usize) -> Option<Vec<u8>> {
    let start = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    let v = &v[start..];
    if v.len() > len {
        return None;
    }
    let mut out = vec![0; len - v.len()];
    out.extend_from_slice(v);
    Some(out)
}

/// `alg || H_alg(public)`, the name of an object whose `TPMT_PUBLIC` is `public`.
pub fn name_with(alg: HashAlg, public: &[u8]) -> Result<Vec<u8>, TpmError> {
    let mut name = alg.tpm_id().to_be_bytes().to_vec();
    name.extend(alg.hash(public));
    Ok(name)
}

/// Whether `name` (as a `TPMS_CERTIFY_INFO` holds it) is the name of `public`, computed with the
/// hash the name itself says.
pub fn name_matches(name: &[u8], public: &Public) -> Result<bool, TpmError> {
    let Some((alg, _)) = name.split_first_chunk::<2>() else {
        return Err(TpmError::Unsupported("name too short".into()));
    };
    let alg = HashAlg::from_tpm(TpmAlgId::try_from(u16::from_be_bytes(*alg)).map_err(|_| {
        TpmError::Unsupported(format!("unsupported hash algorithm 0x{:04x}", u16::from_be_bytes(*alg)))
    })?)?;
    Ok(name_with(alg, &public.bytes)? == name)
}

/// The name a TPM2_Certify attests to, from its `TPMS_ATTEST`.
pub fn certified_name(attest: &[u8]) -> Result<Vec<u8>, TpmError> {
    let attest: TpmsAttest = decode("TPMS_ATTEST", attest)?;
    match (attest.attest_type, attest.attested) {
        (TpmSt::AttestCertify, TpmuAttest::Certify(info)) => Ok(info.name.to_vec()),
        _ => Err(TpmError::Unsupported("missing certify info".into())),
    }
}

/// A `TPMT_SIGNATURE`'s signature bytes: the RSA signature, or ECDSA's `r` and `s`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// RSASSA or RSAPSS: the signature.
    Rsa(Vec<u8>),
    /// ECDSA: `r` and `s`, big-endian.
    Ecdsa(Vec<u8>, Vec<u8>),
}

/// Reads a `TPMT_SIGNATURE`.
pub fn parse_signature(bytes: &[u8]) -> Result<Signature, TpmError> {
    let sig: TpmtSignature = decode("TPMT_SIGNATURE", bytes)?;
    match sig.signature {
        TpmuSignature::Rsassa(s) | TpmuSignature::Rsapss(s) => Ok(Signature::Rsa(s.sig.to_vec())),
        TpmuSignature::Ecdsa(s) => Ok(Signature::Ecdsa(s.signature_r.to_vec(), s.signature_s.to_vec())),
        _ => Err(TpmError::Unsupported(format!("unsupported signature algorithm 0x{:04x}", sig.sig_alg.value()))),
    }
}

/// Why a TPM signature does not verify (SPIRE's messages where it has them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The key has no sign attribute.
    #[error("not a signing key")]
    NotSigning,
    /// SPIRE's attestation key is always RSA.
    #[error("only RSA keys are supported")]
    NotRsa,
    /// The key's scheme names no hash.
    #[error("signature scheme has no hash")]
    NoHash,
    /// The structure is wrong.
    #[error(transparent)]
    Tpm(#[from] TpmError),
    /// The signature is not the key's over the data.
    #[error("crypto/rsa: verification error")]
    Invalid,
}

/// Checks an RSASSA (PKCS#1 v1.5) `TPMT_SIGNATURE` by an RSA signing key over `data`, hashed with
/// the key's scheme hash (SPIRE's `checkSignature`).
pub fn verify_rsa_signature(key: &Public, data: &[u8], signature_bytes: &[u8]) -> Result<(), SignatureError> {
    if !key.can_sign() {
        return Err(SignatureError::NotSigning);
    }
    let KeyMaterial::Rsa { modulus, .. } = &key.key else { return Err(SignatureError::NotRsa) };
    let hash = HashAlg::from_tpm(key.scheme_hash.ok_or(SignatureError::NoHash)?)?;
    let Signature::Rsa(sig) = parse_signature(signature_bytes)? else { return Err(SignatureError::Invalid) };
    let params: &signature::RsaParameters = match hash {
        HashAlg::Sha1 => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        HashAlg::Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        HashAlg::Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
    };
    let exponent = key.rsa_exponent().unwrap_or(65537).to_be_bytes();
    let e = &exponent[exponent.iter().position(|b| *b != 0).unwrap_or(3)..];
    let n = &modulus[modulus.iter().position(|b| *b != 0).unwrap_or(0)..];
    let components = signature::RsaPublicKeyComponents { n, e };
    components.verify(params, data, &sig).map_err(|_| SignatureError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RSA-2048 AK template as go-tpm-tools' `AKTemplateRSA` (RSASSA-SHA256, restricted signer)
    /// with a dummy modulus.
    pub(crate) fn rsa_ak_public(modulus: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(0x0001u16.to_be_bytes()); // TPM_ALG_RSA
        v.extend(0x000bu16.to_be_bytes()); // nameAlg SHA-256
        v.extend(0x0005_0472u32.to_be_bytes()); // sign|restricted|noDA|userWithAuth|sdo|fixedParent|fixedTPM
        v.extend(0u16.to_be_bytes()); // authPolicy
        v.extend(0x0010u16.to_be_bytes()); // symmetric NULL
        v.extend(0x0014u16.to_be_bytes()); // RSASSA
        v.extend(0x000bu16.to_be_bytes()); // SHA-256
        v.extend(2048u16.to_be_bytes());
        v.extend(0u32.to_be_bytes());
        v.extend(u16::try_from(modulus.len()).unwrap().to_be_bytes());
        v.extend(modulus);
        v
    }

    #[test]
    fn reads_an_rsa_public_and_names_it() {
        let bytes = rsa_ak_public(&[0xab; 256]);
        let public = Public::parse(&bytes).unwrap();
        assert_eq!(public.bytes, bytes);
        assert!(public.can_sign());
        assert_eq!(public.scheme, TpmAlgId::Rsassa);
        assert_eq!(public.scheme_hash, Some(TpmAlgId::Sha256));
        assert_eq!(public.rsa_exponent(), Some(65537));
        let name = public.name().unwrap();
        assert_eq!(name[..2], [0x00, 0x0b]);
        assert_eq!(name[2..], *HashAlg::Sha256.hash(&bytes));
        assert!(name_matches(&name, &public).unwrap());
        assert!(!name_matches(&[0, 0x0b, 1, 2], &public).unwrap());
    }

    fn with_attributes(bits: u32) -> Public {
        let mut bytes = rsa_ak_public(&[0xab; 256]);
        bytes[4..8].copy_from_slice(&bits.to_be_bytes());
        Public::parse(&bytes).unwrap()
    }

    #[test]
    fn attribute_requirements() {
        // go-tpm-tools' `FlagSignerDefault` (SPIRE's AK), ours (with noDA) and tpm2-tools' usual DevID.
        for ak in [0x0005_0072, 0x0005_0472] {
            assert!(with_attributes(ak).is_resident_restricted_signer(), "{ak:#x}");
            assert!(with_attributes(ak).is_fixed_signer());
        }
        assert_eq!(with_attributes(0x0005_0472).attribute_bits(), 0x0005_0472);
        let devid = with_attributes(0x0004_0072);
        assert!(devid.is_fixed_signer());
        assert!(!devid.is_resident_restricted_signer(), "unrestricted");
        for (bits, why) in [
            (0x0007_0072, "decrypt too"),
            (0x0005_0070, "not fixedTPM"),
            (0x0005_0062, "not fixedParent"),
            (0x0005_0052, "not sensitiveDataOrigin"),
            (0x0001_0072, "not sign"),
        ] {
            assert!(!with_attributes(bits).is_resident_restricted_signer(), "{why}");
        }
        // An imported key: no fixedTPM, no sensitiveDataOrigin.
        assert!(!with_attributes(0x0004_0050).is_fixed_signer());
        assert!(!with_attributes(0x0000_0072).is_fixed_signer());
    }

    #[test]
    fn refuses_garbage_and_trailing_bytes() {
        let mut bytes = rsa_ak_public(&[1; 256]);
        bytes.push(0);
        assert_eq!(Public::parse(&bytes).unwrap_err(), TpmError::Trailing("TPMT_PUBLIC"));
        assert!(Public::parse(&[0, 1, 2]).is_err());
        assert!(certified_name(&[0xff, 0x54, 0x43, 0x47]).is_err());
        assert!(parse_signature(&[]).is_err());
    }
}
