//! TPM2_MakeCredential in software (TPM 2.0 Part 1, §24 "Credential Protection"): a credential
//! only the TPM holding the endorsement key can open, and only for the attestation key `name`, so
//! that an agent that returns it proves the AK and the EK share a TPM.
//!
//! The seed is encrypted to the RSA EK with OAEP (the EK's name hash, label `IDENTITY\0`); the
//! credential is encrypted with AES-CFB under `KDFa(seed, "STORAGE", name)` and protected by an HMAC
//! under `KDFa(seed, "INTEGRITY")`. Only RSA EKs: SPIRE v1.13.3 refuses others.

use aws_lc_rs::cipher::{AES_128, AES_256, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OAEP_SHA512_MGF1SHA512};
use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey};
use spire_attestation::tpm_devid::tpm::{HashAlg, KeyMaterial, Public};

/// Why no credential could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The EK is not an RSA storage key with AES (SPIRE's message).
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    /// The EK's name algorithm is not a hash we know.
    #[error("{0}")]
    Hash(String),
    /// aws-lc-rs refused the key or an operation.
    #[error("{0}")]
    Crypto(&'static str),
}

/// A made credential, each part without its `TPM2B` size prefix (as SPIRE sends them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadeCredential {
    /// `TPM2B_DIGEST(outer HMAC) || encrypted credential`: the `TPM2B_ID_OBJECT` contents.
    pub credential_blob: Vec<u8>,
    /// The OAEP-encrypted seed.
    pub encrypted_secret: Vec<u8>,
}

/// Makes a credential carrying `secret` for the object named `name`, to be activated by the TPM
/// whose endorsement key is `ek`.
pub fn make_credential(ek: &Public, name: &[u8], secret: &[u8]) -> Result<MadeCredential, CredentialError> {
    let KeyMaterial::Rsa { modulus, symmetric_bits, .. } = &ek.key else {
        return Err(CredentialError::UnsupportedAlgorithm);
    };
    let cipher = match symmetric_bits {
        128 => &AES_128,
        256 => &AES_256,
        _ => return Err(CredentialError::UnsupportedAlgorithm),
    };
    let hash = HashAlg::from_tpm(ek.name_alg).map_err(|e| CredentialError::Hash(e.to_string()))?;
    let exponent = ek.rsa_exponent().unwrap_or(65537);
    let mut seed = vec![0u8; hash.digest_alg().output_len()];
    aws_lc_rs::rand::fill(&mut seed).map_err(|_| CredentialError::Crypto("random seed"))?;
    let encrypted_secret = oaep_encrypt(hash, modulus, exponent, &seed)?;

    let sym_key = kdfa(hash, &seed, b"STORAGE", name, &[], usize::from(*symmetric_bits));
    let mut enc_identity =
        u16::try_from(secret.len()).map_err(|_| CredentialError::Crypto("secret too long"))?.to_be_bytes().to_vec();
    enc_identity.extend_from_slice(secret);
    let key = UnboundCipherKey::new(cipher, &sym_key).map_err(|_| CredentialError::Crypto("symmetric key"))?;
    let key = EncryptingKey::cfb128(key).map_err(|_| CredentialError::Crypto("symmetric key"))?;
    key.less_safe_encrypt(&mut enc_identity, EncryptionContext::Iv128(FixedLength::from([0u8; 16])))
        .map_err(|_| CredentialError::Crypto("symmetric encryption"))?;

    let digest_len = hash.digest_alg().output_len();
    let hmac_key = kdfa(hash, &seed, b"INTEGRITY", &[], &[], digest_len * 8);
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac_alg(hash), &hmac_key));
    ctx.update(&enc_identity);
    ctx.update(name);
    let outer = ctx.sign();
    let mut credential_blob =
        u16::try_from(digest_len).map_err(|_| CredentialError::Crypto("digest length"))?.to_be_bytes().to_vec();
    credential_blob.extend_from_slice(outer.as_ref());
    credential_blob.extend(enc_identity);
    Ok(MadeCredential { credential_blob, encrypted_secret })
}

fn hmac_alg(hash: HashAlg) -> hmac::Algorithm {
    match hash {
        HashAlg::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha256 => hmac::HMAC_SHA256,
        HashAlg::Sha384 => hmac::HMAC_SHA384,
        HashAlg::Sha512 => hmac::HMAC_SHA512,
    }
}

/// KDFa (TPM 2.0 Part 1, §11.4.10.2): SP 800-108 counter mode with HMAC; `label` gets its
/// terminating zero here.
pub fn kdfa(hash: HashAlg, key: &[u8], label: &[u8], context_u: &[u8], context_v: &[u8], bits: usize) -> Vec<u8> {
    let key = hmac::Key::new(hmac_alg(hash), key);
    let bytes = bits.div_ceil(8);
    let mut out = Vec::with_capacity(bytes + 64);
    let mut counter: u32 = 1;
    while out.len() < bytes {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(&counter.to_be_bytes());
        ctx.update(label);
        ctx.update(&[0]);
        ctx.update(context_u);
        ctx.update(context_v);
        ctx.update(&u32::try_from(bits).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(ctx.sign().as_ref());
        counter += 1;
    }
    out.truncate(bytes);
    if !bits.is_multiple_of(8)
        && let Some(first) = out.first_mut()
    {
        *first &= (1u8 << (bits % 8)) - 1;
    }
    out
}

fn oaep_encrypt(hash: HashAlg, modulus: &[u8], exponent: u32, seed: &[u8]) -> Result<Vec<u8>, CredentialError> {
    let spki = rsa_spki_der(modulus, exponent);
    let key = PublicEncryptingKey::from_der(&spki).map_err(|_| CredentialError::Crypto("endorsement key rejected"))?;
    let key = OaepPublicEncryptingKey::new(key).map_err(|_| CredentialError::Crypto("endorsement key rejected"))?;
    let alg = match hash {
        HashAlg::Sha1 => &OAEP_SHA1_MGF1SHA1,
        HashAlg::Sha256 => &OAEP_SHA256_MGF1SHA256,
        HashAlg::Sha384 => &OAEP_SHA384_MGF1SHA384,
        HashAlg::Sha512 => &OAEP_SHA512_MGF1SHA512,
    };
    let mut out = vec![0u8; key.ciphertext_size()];
    let written = key
        .encrypt(alg, seed, &mut out, Some(b"IDENTITY\0"))
        .map_err(|_| CredentialError::Crypto("seed encryption"))?
        .len();
    out.truncate(written);
    Ok(out)
}

/// The X.509 `SubjectPublicKeyInfo` of an RSA key.
pub fn rsa_spki_der(modulus: &[u8], exponent: u32) -> Vec<u8> {
    let rsa_public = der(0x30, &[der_uint(modulus), der_uint(&exponent.to_be_bytes())].concat());
    let algorithm =
        der(0x30, &[der(0x06, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]), der(0x05, &[])].concat());
    let bits = der(0x03, &[&[0u8][..], &rsa_public].concat());
    der(0x30, &[algorithm, bits].concat())
}

fn der_uint(magnitude: &[u8]) -> Vec<u8> {
    let start = magnitude.iter().position(|b| *b != 0).unwrap_or(magnitude.len().saturating_sub(1));
    let mut v = magnitude[start..].to_vec();
    if v.first().is_none_or(|b| b & 0x80 != 0) {
        v.insert(0, 0);
    }
    der(0x02, &v)
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdfa_matches_the_tpm_reference() {
        // Two blocks, truncated, and counter/label/context framing: checked against an
        // independent computation of HMAC-SHA256(key, i || "STORAGE\0" || u || v || bits).
        let key = [7u8; 32];
        let out = kdfa(HashAlg::Sha256, &key, b"STORAGE", b"u", b"v", 384);
        assert_eq!(out.len(), 48);
        let block = |i: u32| {
            let k = hmac::Key::new(hmac::HMAC_SHA256, &key);
            let msg = [&i.to_be_bytes()[..], b"STORAGE\0uv", &384u32.to_be_bytes()].concat();
            hmac::sign(&k, &msg).as_ref().to_vec()
        };
        assert_eq!(out[..32], block(1)[..]);
        assert_eq!(out[32..], block(2)[..16]);
    }

    #[test]
    fn spki_der_is_accepted_by_aws_lc() {
        let n = [&[0xc1u8][..], &[0x55; 255]].concat();
        assert!(PublicEncryptingKey::from_der(&rsa_spki_der(&n, 65537)).is_ok());
    }
}
