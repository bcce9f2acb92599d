//! `x509pop`: the agent sends its certificate chain and proves, by signing the server's nonce, that
//! it holds the leaf's private key.
//!
//! Configuration, as SPIRE's agent plugin takes it:
//! `NodeAttestor "x509pop" { plugin_data { private_key_path = "..." certificate_path = "..." } }`,
//! both required, `intermediates_path` optional (PEM certificates appended to the chain). The files
//! are read at every attestation, so a renewed certificate is used at the next re-attestation; the
//! key read with the payload answers that attestation's challenge.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use spire_attestation::x509pop::{AttestationData, Challenge, SigningKey};
use spire_config::{ConfigError, PluginConfig};

use super::{NodeAttestor, NodeAttestorError};

pub use spire_attestation::x509pop::PLUGIN_NAME;

/// The plugin's `plugin_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509PopConfig {
    /// `private_key_path` (required): PEM, PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub private_key_path: PathBuf,
    /// `certificate_path` (required): PEM; the first certificate is the leaf, any others follow it.
    pub certificate_path: PathBuf,
    /// `intermediates_path`: PEM certificates appended to the chain.
    pub intermediates_path: Option<PathBuf>,
}

impl X509PopConfig {
    /// Decodes the plugin's data; unknown keys are refused with their line.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        spire_config::plugin_data::decode(plugin, |r| {
            let required = |r: &mut spire_config::Reader<'_, '_>, key: &str| {
                let value = r.non_empty_string(key);
                if value.is_none() {
                    let message = format!("{}: {key} is required", r.path());
                    let line = r.pos().line;
                    r.diags().error(ConfigError::invalid(message, line));
                }
                PathBuf::from(value.unwrap_or_default())
            };
            let private_key_path = required(r, "private_key_path");
            let certificate_path = required(r, "certificate_path");
            let intermediates_path = r.string("intermediates_path").filter(|p| !p.trim().is_empty()).map(PathBuf::from);
            Self { private_key_path, certificate_path, intermediates_path }
        })
    }
}

/// Why the key pair or the challenge failed (SPIRE's wording).
#[derive(Debug, thiserror::Error)]
pub enum X509PopError {
    /// The certificate or key could not be read or do not match.
    #[error("unable to load keypair: {0}")]
    Keypair(String),
    /// The intermediates file could not be read.
    #[error("unable to load intermediate certificates: {0}")]
    Intermediates(String),
    /// The challenge is not JSON of the expected shape.
    #[error("unable to unmarshal challenge: {0}")]
    BadChallenge(String),
    /// No payload was sent before the challenge.
    #[error("failed to calculate challenge response: no key loaded")]
    NoKey,
    /// The challenge could not be answered.
    #[error("failed to calculate challenge response: {0}")]
    Respond(#[from] spire_attestation::x509pop::RespondError),
}

/// Attests with a certificate and its private key.
#[derive(Debug)]
pub struct X509PopAttestor {
    config: X509PopConfig,
    key: Mutex<Option<std::sync::Arc<SigningKey>>>,
}

impl X509PopAttestor {
    /// An attestor with `config`.
    pub fn new(config: X509PopConfig) -> Self {
        Self { config, key: Mutex::new(None) }
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("open {}: {e}", path.display()))
}

/// The chain (leaf first) and the key, checked to belong together.
pub fn load(config: &X509PopConfig) -> Result<(Vec<Vec<u8>>, SigningKey), X509PopError> {
    let keypair = X509PopError::Keypair;
    let mut chain = spire_identity::x509::certs_from_pem(&read(&config.certificate_path).map_err(keypair)?)
        .map_err(|e| X509PopError::Keypair(format!("tls: failed to find any PEM data in certificate input: {e}")))?;
    let key_text = read(&config.private_key_path).map_err(keypair)?;
    let key = pem::parse_many(&key_text)
        .unwrap_or_default()
        .into_iter()
        .find_map(|b| match b.tag() {
            "PRIVATE KEY" => SigningKey::from_pkcs8(b.contents()),
            "RSA PRIVATE KEY" | "EC PRIVATE KEY" => SigningKey::from_legacy_der(b.contents()),
            _ => None,
        })
        .ok_or_else(|| X509PopError::Keypair("tls: failed to find any PEM data in key input".into()))?;
    let (_, leaf) =
        x509_parser::parse_x509_certificate(&chain[0]).map_err(|e| X509PopError::Keypair(format!("x509: {e}")))?;
    if leaf.public_key().subject_public_key.data.as_ref() != key.public_key().as_slice() {
        return Err(X509PopError::Keypair("tls: private key does not match public key".into()));
    }
    if let Some(path) = &config.intermediates_path {
        let text = read(path).map_err(X509PopError::Intermediates)?;
        let more =
            spire_identity::x509::certs_from_pem(&text).map_err(|e| X509PopError::Intermediates(e.to_string()))?;
        chain.extend(more);
    }
    Ok((chain, key))
}

#[async_trait]
impl NodeAttestor for X509PopAttestor {
    fn name(&self) -> &str {
        PLUGIN_NAME
    }

    async fn payload(&self) -> Result<Vec<u8>, NodeAttestorError> {
        let (certificates, key) = load(&self.config).map_err(NodeAttestorError::plugin)?;
        *self.key.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(std::sync::Arc::new(key));
        Ok(AttestationData { certificates }.to_json())
    }

    async fn challenge(&self, challenge: &[u8]) -> Result<Vec<u8>, NodeAttestorError> {
        let key = self.key.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let key = key.ok_or_else(|| NodeAttestorError::plugin(X509PopError::NoKey))?;
        let challenge = Challenge::from_json(challenge)
            .map_err(|e| NodeAttestorError::plugin(X509PopError::BadChallenge(e.to_string())))?;
        let response = key.respond(&challenge).map_err(|e| NodeAttestorError::plugin(X509PopError::from(e)))?;
        Ok(response.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    fn write_pair(dir: &Path, alg: &'static rcgen::SignatureAlgorithm) -> X509PopConfig {
        let key = KeyPair::generate_for(alg).unwrap();
        let cert = CertificateParams::new(vec!["node".into()]).unwrap().self_signed(&key).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        X509PopConfig {
            private_key_path: dir.join("key.pem"),
            certificate_path: dir.join("cert.pem"),
            intermediates_path: None,
        }
    }

    #[tokio::test]
    async fn payload_then_challenge() {
        let dir = tempfile::tempdir().unwrap();
        for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_RSA_SHA256] {
            let a = X509PopAttestor::new(write_pair(dir.path(), alg));
            assert!(matches!(a.challenge(b"{}").await, Err(NodeAttestorError::Plugin(_))));
            let payload = AttestationData::from_json(&a.payload().await.unwrap()).unwrap();
            assert_eq!(payload.certificates.len(), 1);
            let nonce = Some(spire_attestation::x509pop::NonceChallenge { nonce: vec![7; 32] });
            let c = if alg == &rcgen::PKCS_RSA_SHA256 {
                Challenge { rsa_signature: nonce, ecdsa_signature: None }
            } else {
                Challenge { rsa_signature: None, ecdsa_signature: nonce }
            };
            let r = spire_attestation::x509pop::Response::from_json(&a.challenge(&c.to_json()).await.unwrap()).unwrap();
            assert!(r.rsa_signature.is_some() || r.ecdsa_signature.is_some());
            let err = a.challenge(b"[").await.unwrap_err().to_string();
            assert!(err.starts_with("unable to unmarshal challenge: "), "{err}");
        }
    }

    #[tokio::test]
    async fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = write_pair(dir.path(), &rcgen::PKCS_ECDSA_P256_SHA256);
        std::fs::write(&config.private_key_path, KeyPair::generate().unwrap().serialize_pem()).unwrap();
        let err = X509PopAttestor::new(config).payload().await.unwrap_err().to_string();
        assert_eq!(err, "unable to load keypair: tls: private key does not match public key");
    }
}
