//! Keys the server signs with, which may live where they can never be read: in a key manager (an
//! HSM or a cloud KMS behind SPIRE's KeyManager plugin) that only hands out the public key and signs
//! digests on request, as Go's `crypto.Signer` does.
//!
//! [`SigningKey`] is either a [`PrivateKey`] held here or a [`RemoteKey`]: a public key with a
//! [`RemoteSigner`] that signs for it. The CA (certificates, CSRs) and JWT-SVID signing take a
//! `SigningKey`; whatever must hand key material out (SVID keys given to workloads, the agent's TLS
//! key) keeps requiring a `PrivateKey`, and [`SigningKey::into_local`] says clearly when there is none.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::signature::{
    self as sig, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, RsaEncoding, RsaKeyPair,
    UnparsedPublicKey, VerificationAlgorithm,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::jwk::{PublicKeyKind, public_key_kind};
use crate::keys::{KeyError, KeyType, PrivateKey};

/// The digest a signature is computed over (SPIRE's `HashAlgorithm` of `SignData`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlgorithm {
    fn algorithm(self) -> &'static digest::Algorithm {
        match self {
            Self::Sha256 => &digest::SHA256,
            Self::Sha384 => &digest::SHA384,
            Self::Sha512 => &digest::SHA512,
        }
    }

    /// The digest of `message`.
    pub fn digest(self, message: &[u8]) -> Vec<u8> {
        digest::digest(self.algorithm(), message).as_ref().to_vec()
    }

    /// The digest's length in bytes.
    pub fn output_len(self) -> usize {
        self.algorithm().output_len()
    }
}

/// How a digest is to be signed: the `signer_opts` of SPIRE's `SignData`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignerOpts {
    /// ECDSA (the signature ASN.1 DER) or RSASSA-PKCS1-v1_5, over a digest made with this hash:
    /// `SignData`'s `hash_algorithm`.
    Hash(HashAlgorithm),
    /// RSASSA-PSS with MGF1 over the same hash: `SignData`'s `pss_options`.
    Pss {
        /// The digest and MGF1 hash.
        hash: HashAlgorithm,
        /// The salt length in bytes; always the hash's length here (what JWS's PS256 and friends
        /// require, and what the verifiers we use accept).
        salt_length: usize,
    },
}

impl SignerOpts {
    /// PSS with a salt as long as the hash.
    pub fn pss(hash: HashAlgorithm) -> Self {
        Self::Pss { hash, salt_length: hash.output_len() }
    }

    /// The hash the digest is made with.
    pub fn hash(self) -> HashAlgorithm {
        match self {
            Self::Hash(h) | Self::Pss { hash: h, .. } => h,
        }
    }

    /// What X.509 signing uses with a key type, matching rcgen's algorithms: ECDSA with the curve's
    /// hash, RSA PKCS#1 v1.5 with SHA-256.
    pub fn x509(key_type: KeyType) -> Self {
        match key_type {
            KeyType::EcP256 | KeyType::Rsa2048 | KeyType::Rsa4096 => Self::Hash(HashAlgorithm::Sha256),
            KeyType::EcP384 => Self::Hash(HashAlgorithm::Sha384),
        }
    }
}

/// Why a [`RemoteSigner`] could not sign: whatever the key manager said.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct RemoteSignError(Box<dyn std::error::Error + Send + Sync>);

impl RemoteSignError {
    /// Wraps an error or a message.
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(error.into())
    }
}

/// Something that signs digests with a private key it does not reveal, as a KeyManager plugin's
/// `SignData` does.
///
/// Synchronous because certificate signing (rcgen) is; an implementation over async RPC bridges with
/// `tokio::task::block_in_place` or similar.
pub trait RemoteSigner: Send + Sync + fmt::Debug {
    /// Signs `digest` (already hashed with `opts.hash()`) and returns the signature as Go's
    /// `crypto.Signer` does: ASN.1 DER `ECDSA-Sig-Value` for EC keys, the raw RSASSA-PKCS1-v1_5 or
    /// RSASSA-PSS signature (as long as the modulus) for RSA keys.
    fn sign_digest(&self, opts: SignerOpts, digest: &[u8]) -> Result<Vec<u8>, RemoteSignError>;
}

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The remote signer (the key manager) failed.
    #[error("the key manager failed to sign: {0}")]
    Remote(#[source] RemoteSignError),
    /// The remote signer returned a signature that does not verify with the key's public key.
    #[error("the key manager returned an invalid signature: {0}")]
    BadSignature(String),
    /// The options do not fit the key (ECDSA with another curve's hash, PSS with another salt length).
    #[error("cannot sign with a {key_type} key using {opts:?}")]
    Unsupported {
        /// The key's type.
        key_type: KeyType,
        /// What was asked.
        opts: SignerOpts,
    },
    /// The local crypto library failed.
    #[error("signing with the local key failed")]
    Local,
}

/// The verification algorithm for a key type and signing options, or `None` if they do not fit.
fn verification(key_type: KeyType, opts: SignerOpts) -> Option<&'static dyn VerificationAlgorithm> {
    use HashAlgorithm::{Sha256, Sha384, Sha512};
    Some(match (key_type, opts) {
        (KeyType::EcP256, SignerOpts::Hash(Sha256)) => &sig::ECDSA_P256_SHA256_ASN1,
        (KeyType::EcP384, SignerOpts::Hash(Sha384)) => &sig::ECDSA_P384_SHA384_ASN1,
        (KeyType::Rsa2048 | KeyType::Rsa4096, SignerOpts::Hash(h)) => match h {
            Sha256 => &sig::RSA_PKCS1_2048_8192_SHA256,
            Sha384 => &sig::RSA_PKCS1_2048_8192_SHA384,
            Sha512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        },
        (KeyType::Rsa2048 | KeyType::Rsa4096, SignerOpts::Pss { hash, salt_length })
            if salt_length == hash.output_len() =>
        {
            match hash {
                Sha256 => &sig::RSA_PSS_2048_8192_SHA256,
                Sha384 => &sig::RSA_PSS_2048_8192_SHA384,
                Sha512 => &sig::RSA_PSS_2048_8192_SHA512,
            }
        }
        _ => return None,
    })
}

fn rsa_encoding(opts: SignerOpts) -> &'static dyn RsaEncoding {
    use HashAlgorithm::{Sha256, Sha384, Sha512};
    match opts {
        SignerOpts::Hash(Sha256) => &sig::RSA_PKCS1_SHA256,
        SignerOpts::Hash(Sha384) => &sig::RSA_PKCS1_SHA384,
        SignerOpts::Hash(Sha512) => &sig::RSA_PKCS1_SHA512,
        SignerOpts::Pss { hash: Sha256, .. } => &sig::RSA_PSS_SHA256,
        SignerOpts::Pss { hash: Sha384, .. } => &sig::RSA_PSS_SHA384,
        SignerOpts::Pss { hash: Sha512, .. } => &sig::RSA_PSS_SHA512,
    }
}

impl PrivateKey {
    /// Signs a digest made with `opts.hash()`, returning what [`RemoteSigner::sign_digest`] returns.
    pub fn sign_digest(&self, opts: SignerOpts, digest: &[u8]) -> Result<Vec<u8>, SignError> {
        let key_type = self.key_type();
        if verification(key_type, opts).is_none() {
            return Err(SignError::Unsupported { key_type, opts });
        }
        let digest = Digest::import_less_safe(digest, opts.hash().algorithm()).map_err(|_| SignError::Local)?;
        match key_type {
            KeyType::EcP256 | KeyType::EcP384 => {
                let alg = if key_type == KeyType::EcP256 {
                    &ECDSA_P256_SHA256_ASN1_SIGNING
                } else {
                    &ECDSA_P384_SHA384_ASN1_SIGNING
                };
                let pair = EcdsaKeyPair::from_pkcs8(alg, self.pkcs8_der()).map_err(|_| SignError::Local)?;
                Ok(pair.sign_digest(&digest).map_err(|_| SignError::Local)?.as_ref().to_vec())
            }
            KeyType::Rsa2048 | KeyType::Rsa4096 => {
                let pair = RsaKeyPair::from_pkcs8(self.pkcs8_der()).map_err(|_| SignError::Local)?;
                let mut out = vec![0; pair.public_modulus_len()];
                pair.sign_digest(rsa_encoding(opts), &digest, &mut out).map_err(|_| SignError::Local)?;
                Ok(out)
            }
        }
    }
}

/// A local key can stand in for a remote one: a key manager that keeps its keys in process, and
/// tests of the remote path with a real signer.
impl RemoteSigner for PrivateKey {
    fn sign_digest(&self, opts: SignerOpts, digest: &[u8]) -> Result<Vec<u8>, RemoteSignError> {
        PrivateKey::sign_digest(self, opts, digest).map_err(RemoteSignError::new)
    }
}

/// A key held by a key manager: its public key, and who signs with it.
#[derive(Clone)]
pub struct RemoteKey {
    key_type: KeyType,
    spki: Vec<u8>,
    /// The subjectPublicKey bits, which rcgen wants on their own.
    raw: Vec<u8>,
    signer: Arc<dyn RemoteSigner>,
}

impl fmt::Debug for RemoteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteKey").field("key_type", &self.key_type).field("signer", &self.signer).finish()
    }
}

impl RemoteKey {
    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The public key, SubjectPublicKeyInfo DER, as the key manager gave it.
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki
    }

    /// Who signs.
    pub fn signer(&self) -> &Arc<dyn RemoteSigner> {
        &self.signer
    }

    /// Hashes `message`, has it signed and checks the signature against the public key, as Go's
    /// `x509.CreateCertificate` checks what a `crypto.Signer` returns: a key manager answering with
    /// another key's signature (or garbage) fails here, not in every peer that later verifies.
    fn sign(&self, opts: SignerOpts, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let alg = verification(self.key_type, opts).ok_or(SignError::Unsupported { key_type: self.key_type, opts })?;
        let digest = opts.hash().digest(message);
        let signature = self.signer.sign_digest(opts, &digest).map_err(SignError::Remote)?;
        UnparsedPublicKey::new(alg, &self.spki).verify(message, &signature).map_err(|_| {
            SignError::BadSignature(format!("it does not verify with the {} public key", self.key_type))
        })?;
        Ok(signature)
    }
}

/// A key the server signs with: here, or in a key manager.
#[derive(Debug, Clone)]
pub enum SigningKey {
    /// Key material held in this process.
    Local(PrivateKey),
    /// A key only its key manager can use.
    Remote(RemoteKey),
}

/// Two signing keys are the same when they have the same type and public key (whoever signs).
impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Local(a), Self::Local(b)) => a == b,
            _ => self.key_type() == other.key_type() && self.public_key_der() == other.public_key_der(),
        }
    }
}

impl Eq for SigningKey {}

impl From<PrivateKey> for SigningKey {
    fn from(key: PrivateKey) -> Self {
        Self::Local(key)
    }
}

impl From<&PrivateKey> for SigningKey {
    fn from(key: &PrivateKey) -> Self {
        Self::Local(key.clone())
    }
}

impl From<&SigningKey> for SigningKey {
    fn from(key: &SigningKey) -> Self {
        key.clone()
    }
}

impl SigningKey {
    /// A key held by a key manager: its type, its public key as SubjectPublicKeyInfo DER (a
    /// KeyManager plugin's `pkix_data`), and the signer. The public key must be of `key_type`.
    pub fn remote(key_type: KeyType, public_key_der: Vec<u8>, signer: Arc<dyn RemoteSigner>) -> Result<Self, KeyError> {
        let bad = |reason: String| KeyError::PublicKey { key_type, reason };
        let (rest, spki) = SubjectPublicKeyInfo::from_der(&public_key_der).map_err(|e| bad(e.to_string()))?;
        if !rest.is_empty() {
            return Err(bad("trailing data after the SubjectPublicKeyInfo".into()));
        }
        let kind = public_key_kind(&public_key_der).map_err(|e| bad(e.to_string()))?;
        let fits = match key_type {
            KeyType::EcP256 => kind == PublicKeyKind::EcP256,
            KeyType::EcP384 => kind == PublicKeyKind::EcP384,
            KeyType::Rsa2048 | KeyType::Rsa4096 => {
                let bits = match spki.parsed() {
                    Ok(PublicKey::RSA(rsa)) => rsa.key_size(),
                    _ => 0,
                };
                bits == if key_type == KeyType::Rsa2048 { 2048 } else { 4096 }
            }
        };
        if !fits {
            return Err(bad(format!("the public key is a {kind:?} key")));
        }
        let raw = spki.subject_public_key.data.to_vec();
        Ok(Self::Remote(RemoteKey { key_type, spki: public_key_der, raw, signer }))
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        match self {
            Self::Local(k) => k.key_type(),
            Self::Remote(r) => r.key_type,
        }
    }

    /// The public key as SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> Vec<u8> {
        match self {
            Self::Local(k) => k.public_key_der(),
            Self::Remote(r) => r.spki.clone(),
        }
    }

    /// Whether the key lives in a key manager.
    pub fn is_remote(&self) -> bool {
        matches!(self, Self::Remote(_))
    }

    /// The key material, when it is held here.
    pub fn as_local(&self) -> Option<&PrivateKey> {
        match self {
            Self::Local(k) => Some(k),
            Self::Remote(_) => None,
        }
    }

    /// The key material; [`KeyError::NotExportable`] for a key only its key manager can use.
    pub fn into_local(self) -> Result<PrivateKey, KeyError> {
        match self {
            Self::Local(k) => Ok(k),
            Self::Remote(r) => Err(KeyError::NotExportable(r.key_type)),
        }
    }

    /// Signs `message` (hashing it with `opts.hash()`): ECDSA signatures ASN.1 DER, RSA ones raw.
    /// A remote signature is checked against the public key before it is returned.
    pub fn sign(&self, opts: SignerOpts, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match self {
            Self::Local(k) => k.sign_digest(opts, &opts.hash().digest(message)),
            Self::Remote(r) => r.sign(opts, message),
        }
    }

    /// An rcgen signer: the parsed key pair for a local key (fast, as before), the remote signer
    /// otherwise.
    pub(crate) fn rcgen_key(&self) -> RcgenKey {
        match self {
            Self::Local(k) => RcgenKey::Local(k.rcgen_key_pair()),
            Self::Remote(r) => RcgenKey::Remote(r.clone()),
        }
    }
}

thread_local! {
    /// The last remote signing error on this thread: rcgen's `SigningKey::sign` can only answer
    /// `Error::RemoteKeyError`, so the real cause waits here for the caller of rcgen (signing is
    /// synchronous, so it is on the same thread).
    static RCGEN_ERROR: RefCell<Option<SignError>> = const { RefCell::new(None) };
}

/// Runs an rcgen operation, recovering the cause of a remote signing failure.
pub(crate) fn with_rcgen_errors<T>(
    op: impl FnOnce() -> Result<T, rcgen::Error>,
) -> Result<T, Result<SignError, rcgen::Error>> {
    RCGEN_ERROR.with(|slot| slot.borrow_mut().take());
    op().map_err(|e| match (&e, RCGEN_ERROR.with(|slot| slot.borrow_mut().take())) {
        (rcgen::Error::RemoteKeyError, Some(cause)) => Ok(cause),
        _ => Err(e),
    })
}

/// A [`SigningKey`] as rcgen wants it.
#[derive(Debug)]
pub(crate) enum RcgenKey {
    Local(rcgen::KeyPair),
    Remote(RemoteKey),
}

impl rcgen::PublicKeyData for RcgenKey {
    fn subject_public_key_info(&self) -> Vec<u8> {
        match self {
            Self::Local(k) => k.subject_public_key_info(),
            // Exactly the key manager's encoding, so that it matches the certificates made for it.
            Self::Remote(r) => r.spki.clone(),
        }
    }

    fn der_bytes(&self) -> &[u8] {
        match self {
            Self::Local(k) => k.der_bytes(),
            Self::Remote(r) => &r.raw,
        }
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Self::Local(k) => k.algorithm(),
            Self::Remote(r) => r.key_type.rcgen_algorithm(),
        }
    }
}

impl rcgen::SigningKey for RcgenKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self {
            Self::Local(k) => k.sign(msg),
            Self::Remote(r) => r.sign(SignerOpts::x509(r.key_type), msg).map_err(|e| {
                RCGEN_ERROR.with(|slot| *slot.borrow_mut() = Some(e));
                rcgen::Error::RemoteKeyError
            }),
        }
    }
}

/// An ASN.1 DER `ECDSA-Sig-Value` as the fixed-size `r || s` JWS wants, each `size` bytes.
pub(crate) fn ecdsa_der_to_fixed(der: &[u8], size: usize) -> Result<Vec<u8>, SignError> {
    let bad = || SignError::BadSignature("not an ASN.1 DER ECDSA signature".into());
    let (r, s) = yasna::parse_der(der, |reader| {
        reader.read_sequence(|seq| Ok((seq.next().read_bigint_bytes()?, seq.next().read_bigint_bytes()?)))
    })
    .map_err(|_| bad())?;
    let mut out = vec![0u8; 2 * size];
    for (i, (bytes, non_negative)) in [r, s].into_iter().enumerate() {
        let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        let magnitude = &bytes[first..];
        if !non_negative || magnitude.is_empty() || magnitude.len() > size {
            return Err(bad());
        }
        out[(i + 1) * size - magnitude.len()..(i + 1) * size].copy_from_slice(magnitude);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signer that always fails, as a key manager that lost its key does.
    #[derive(Debug)]
    struct Broken;

    impl RemoteSigner for Broken {
        fn sign_digest(&self, _: SignerOpts, _: &[u8]) -> Result<Vec<u8>, RemoteSignError> {
            Err(RemoteSignError::new("key \"x509-CA-A\" not found"))
        }
    }

    fn remote(key: &PrivateKey) -> SigningKey {
        SigningKey::remote(key.key_type(), key.public_key_der(), Arc::new(key.clone())).unwrap()
    }

    #[test]
    fn local_and_remote_signatures_verify_for_every_type() {
        for t in KeyType::ALL {
            let key = PrivateKey::generate(t).unwrap();
            let mut all_opts = vec![SignerOpts::x509(t)];
            if t.is_rsa() {
                all_opts.extend([
                    SignerOpts::Hash(HashAlgorithm::Sha384),
                    SignerOpts::Hash(HashAlgorithm::Sha512),
                    SignerOpts::pss(HashAlgorithm::Sha256),
                    SignerOpts::pss(HashAlgorithm::Sha512),
                ]);
            }
            for opts in all_opts {
                for signing in [SigningKey::from(&key), remote(&key)] {
                    let signature = signing.sign(opts, b"message").unwrap();
                    let alg = verification(t, opts).unwrap();
                    UnparsedPublicKey::new(alg, key.public_key_der()).verify(b"message", &signature).unwrap();
                }
            }
        }
    }

    #[test]
    fn remote_keys_must_match_their_type_and_hide_their_material() {
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let err = SigningKey::remote(KeyType::EcP384, key.public_key_der(), Arc::new(key.clone())).unwrap_err();
        assert!(err.to_string().contains("not a ec-p384 key"), "{err}");
        let rsa = PrivateKey::generate(KeyType::Rsa2048).unwrap();
        assert!(SigningKey::remote(KeyType::Rsa4096, rsa.public_key_der(), Arc::new(Broken)).is_err());
        assert!(SigningKey::remote(KeyType::EcP256, b"junk".to_vec(), Arc::new(Broken)).is_err());

        let signing = remote(&key);
        assert!(signing.is_remote() && signing.as_local().is_none());
        assert_eq!(signing, SigningKey::from(&key), "same public key, same key");
        assert_eq!(signing.into_local().unwrap_err(), KeyError::NotExportable(KeyType::EcP256));
    }

    #[test]
    fn failures_and_wrong_signatures_are_reported() {
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let broken = SigningKey::remote(KeyType::EcP256, key.public_key_der(), Arc::new(Broken)).unwrap();
        let err = broken.sign(SignerOpts::x509(KeyType::EcP256), b"m").unwrap_err();
        assert_eq!(err.to_string(), "the key manager failed to sign: key \"x509-CA-A\" not found");

        let other = PrivateKey::generate(KeyType::EcP256).unwrap();
        let liar = SigningKey::remote(KeyType::EcP256, key.public_key_der(), Arc::new(other)).unwrap();
        let err = liar.sign(SignerOpts::x509(KeyType::EcP256), b"m").unwrap_err();
        assert!(matches!(err, SignError::BadSignature(_)), "{err}");

        let err = remote(&key).sign(SignerOpts::Hash(HashAlgorithm::Sha384), b"m").unwrap_err();
        assert!(matches!(err, SignError::Unsupported { .. }), "{err}");
    }

    #[test]
    fn ecdsa_signatures_convert_to_fixed_size() {
        for (t, size) in [(KeyType::EcP256, 32), (KeyType::EcP384, 48)] {
            let key = PrivateKey::generate(t).unwrap();
            let alg: &dyn VerificationAlgorithm =
                if size == 32 { &sig::ECDSA_P256_SHA256_FIXED } else { &sig::ECDSA_P384_SHA384_FIXED };
            // Enough signatures that some have r or s shorter than the field (about 1 in 128).
            for _ in 0..300 {
                let der = SigningKey::from(&key).sign(SignerOpts::x509(t), b"m").unwrap();
                let fixed = ecdsa_der_to_fixed(&der, size).unwrap();
                assert_eq!(fixed.len(), 2 * size);
                UnparsedPublicKey::new(alg, key.public_key_der()).verify(b"m", &fixed).unwrap();
            }
        }
        assert!(ecdsa_der_to_fixed(b"\x30\x00", 32).is_err());
        assert!(ecdsa_der_to_fixed(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x81], 32).is_err(), "negative s");
    }
}
