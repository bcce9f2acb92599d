//! TLS client authentication with a key the agent cannot read: the agent SVID's key held by an
//! external KeyManager. rustls is given a signer that signs each handshake through the key manager
//! ([`SigningKey::sign`], which hashes, asks the plugin's `SignData`, and checks the signature).

use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::pki_types::CertificateDer;
use rustls::sign::{CertifiedKey, Signer};
use rustls::{SignatureAlgorithm, SignatureScheme};
use spire_identity::{HashAlgorithm, KeyType, SignerOpts, SigningKey};

/// A resolver presenting `chain` with `key`, whatever the server asks.
pub fn client_cert(chain: Vec<CertificateDer<'static>>, key: SigningKey) -> Arc<dyn ResolvesClientCert> {
    Arc::new(Always(Arc::new(CertifiedKey::new(chain, Arc::new(TlsKey(key))))))
}

#[derive(Debug)]
struct Always(Arc<CertifiedKey>);

impl ResolvesClientCert for Always {
    fn resolve(&self, _issuers: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The key as rustls's signing key.
#[derive(Debug)]
struct TlsKey(SigningKey);

/// The schemes a key type signs with, preferred first, and how each is asked of the key manager.
fn schemes(key_type: KeyType) -> &'static [(SignatureScheme, SignerOpts)] {
    use HashAlgorithm::{Sha256, Sha384, Sha512};
    const EC_P256: &[(SignatureScheme, SignerOpts)] =
        &[(SignatureScheme::ECDSA_NISTP256_SHA256, SignerOpts::Hash(Sha256))];
    const EC_P384: &[(SignatureScheme, SignerOpts)] =
        &[(SignatureScheme::ECDSA_NISTP384_SHA384, SignerOpts::Hash(Sha384))];
    // PSS first: TLS 1.3 allows nothing else for RSA.
    const RSA: &[(SignatureScheme, SignerOpts)] = &[
        (SignatureScheme::RSA_PSS_SHA256, SignerOpts::Pss { hash: Sha256, salt_length: 32 }),
        (SignatureScheme::RSA_PSS_SHA384, SignerOpts::Pss { hash: Sha384, salt_length: 48 }),
        (SignatureScheme::RSA_PSS_SHA512, SignerOpts::Pss { hash: Sha512, salt_length: 64 }),
        (SignatureScheme::RSA_PKCS1_SHA256, SignerOpts::Hash(Sha256)),
        (SignatureScheme::RSA_PKCS1_SHA384, SignerOpts::Hash(Sha384)),
        (SignatureScheme::RSA_PKCS1_SHA512, SignerOpts::Hash(Sha512)),
    ];
    match key_type {
        KeyType::EcP256 => EC_P256,
        KeyType::EcP384 => EC_P384,
        KeyType::Rsa2048 | KeyType::Rsa4096 => RSA,
    }
}

impl rustls::sign::SigningKey for TlsKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        schemes(self.0.key_type())
            .iter()
            .find(|(scheme, _)| offered.contains(scheme))
            .map(|&(scheme, opts)| Box::new(TlsSigner { key: self.0.clone(), scheme, opts }) as Box<dyn Signer>)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self.0.key_type() {
            KeyType::EcP256 | KeyType::EcP384 => SignatureAlgorithm::ECDSA,
            KeyType::Rsa2048 | KeyType::Rsa4096 => SignatureAlgorithm::RSA,
        }
    }
}

#[derive(Debug)]
struct TlsSigner {
    key: SigningKey,
    scheme: SignatureScheme,
    opts: SignerOpts,
}

impl Signer for TlsSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.key.sign(self.opts, message).map_err(|e| rustls::Error::General(e.to_string()))
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}
