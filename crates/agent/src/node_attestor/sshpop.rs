//! `sshpop`: the agent sends its SSH host certificate and proves, by signing the server's nonce
//! with the host key, that it holds that key.
//!
//! Configuration, as SPIRE's agent plugin takes it:
//! `NodeAttestor "sshpop" { plugin_data { host_key_path = "..." host_cert_path = "..." } }`, by
//! default `/etc/ssh/ssh_host_rsa_key` and `/etc/ssh/ssh_host_rsa_key-cert.pub`. The files are
//! read at every attestation, so a renewed host certificate is used at the next re-attestation;
//! the key read with the payload answers that attestation's challenge. As in SPIRE, the key is not
//! checked against the certificate here: a wrong key fails the server's challenge.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use spire_attestation::sshpop::{
    AttestationData, DEFAULT_HOST_CERT_PATH, DEFAULT_HOST_KEY_PATH, HostCertificate, HostKey, RespondError, respond,
};
use spire_config::{ConfigError, PluginConfig};

use super::{NodeAttestor, NodeAttestorError};

pub use spire_attestation::sshpop::PLUGIN_NAME;

/// The plugin's `plugin_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshPopConfig {
    /// `host_key_path`: the host's private key (OpenSSH format, or PEM).
    pub host_key_path: PathBuf,
    /// `host_cert_path`: the host certificate (`ssh-keygen -s ... -h`).
    pub host_cert_path: PathBuf,
}

impl SshPopConfig {
    /// Decodes the plugin's data; unknown keys are refused with their line.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        spire_config::plugin_data::decode(plugin, |r| Self {
            host_key_path: r.non_empty_string("host_key_path").unwrap_or_else(|| DEFAULT_HOST_KEY_PATH.into()).into(),
            host_cert_path: r
                .non_empty_string("host_cert_path")
                .unwrap_or_else(|| DEFAULT_HOST_CERT_PATH.into())
                .into(),
        })
    }
}

/// Why the host key or certificate cannot be used, or a challenge answered (SPIRE's wording).
#[derive(Debug, thiserror::Error)]
pub enum SshPopError {
    /// The key file cannot be read.
    #[error("failed to read host key file: {0}")]
    ReadKey(String),
    /// The certificate file cannot be read.
    #[error("failed to read host cert file: {0}")]
    ReadCert(String),
    /// The key or the certificate does not parse.
    #[error("failed to get cert and signer from pem: {0}")]
    Parse(String),
    /// No payload was sent before the challenge.
    #[error("client must provide attestation data to respond to challenge")]
    NoKey,
    /// The challenge could not be answered.
    #[error(transparent)]
    Respond(#[from] RespondError),
}

/// Attests with an SSH host certificate and its key.
#[derive(Debug)]
pub struct SshPopAttestor {
    config: SshPopConfig,
    key: Mutex<Option<Arc<HostKey>>>,
}

impl SshPopAttestor {
    /// An attestor with `config`.
    pub fn new(config: SshPopConfig) -> Self {
        Self { config, key: Mutex::new(None) }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("open {}: {}", path.display(), spire_cli::goerror::errno_text(&e)))
}

/// The certificate and the key, read and parsed as SPIRE's `BuildClientConfig` does.
pub fn load(config: &SshPopConfig) -> Result<(HostCertificate, HostKey), SshPopError> {
    let key_bytes = read(&config.host_key_path).map_err(SshPopError::ReadKey)?;
    let cert_bytes = read(&config.host_cert_path).map_err(SshPopError::ReadCert)?;
    let key = HostKey::from_pem(&key_bytes).map_err(|e| SshPopError::Parse(e.to_string()))?;
    let cert = HostCertificate::from_text(&cert_bytes).map_err(|e| match e {
        spire_attestation::sshpop::ParseError::NotCertificate => {
            SshPopError::Parse("pubkey isn't a certificate".into())
        }
        other => SshPopError::Parse(other.to_string()),
    })?;
    Ok((cert, key))
}

#[async_trait]
impl NodeAttestor for SshPopAttestor {
    fn name(&self) -> &str {
        PLUGIN_NAME
    }

    async fn payload(&self) -> Result<Vec<u8>, NodeAttestorError> {
        let (cert, key) = load(&self.config).map_err(NodeAttestorError::plugin)?;
        *self.key.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(key));
        Ok(AttestationData { certificate: cert.as_bytes().to_vec() }.to_json())
    }

    async fn challenge(&self, challenge: &[u8]) -> Result<Vec<u8>, NodeAttestorError> {
        let key = self.key.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let key = key.ok_or_else(|| NodeAttestorError::plugin(SshPopError::NoKey))?;
        respond(&key, challenge).map_err(|e| NodeAttestorError::plugin(SshPopError::from(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spire_attestation::sshpop::{Challenge, Response};

    fn ssh_keygen(dir: &Path, args: &[&str]) {
        let out = std::process::Command::new("ssh-keygen").args(args).current_dir(dir).output().expect("ssh-keygen");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    /// A CA and a host key certified by it, in `dir`.
    fn host(dir: &Path) -> SshPopConfig {
        ssh_keygen(dir, &["-q", "-N", "", "-t", "ed25519", "-f", "ca"]);
        ssh_keygen(dir, &["-q", "-N", "", "-t", "ecdsa", "-f", "host"]);
        ssh_keygen(dir, &["-q", "-s", "ca", "-h", "-I", "host", "-n", "host.example.org", "host.pub"]);
        SshPopConfig { host_key_path: dir.join("host"), host_cert_path: dir.join("host-cert.pub") }
    }

    fn plugin(data: &str) -> PluginConfig {
        PluginConfig::built_in("NodeAttestor", "sshpop", data).unwrap()
    }

    #[test]
    fn spire_defaults_and_keys() {
        let c = SshPopConfig::from_plugin(&plugin("")).unwrap();
        assert_eq!(c.host_key_path, PathBuf::from("/etc/ssh/ssh_host_rsa_key"));
        assert_eq!(c.host_cert_path, PathBuf::from("/etc/ssh/ssh_host_rsa_key-cert.pub"));
        let c = SshPopConfig::from_plugin(&plugin("host_key_path = \"/k\"\nhost_cert_path = \"/c\"")).unwrap();
        assert_eq!((c.host_key_path, c.host_cert_path), (PathBuf::from("/k"), PathBuf::from("/c")));
        let err = SshPopConfig::from_plugin(&plugin("host_key = \"/k\"")).unwrap_err().to_string();
        assert!(err.contains("unknown configuration key \"host_key\""), "{err}");
    }

    #[tokio::test]
    async fn payload_then_challenge() {
        let dir = tempfile::tempdir().unwrap();
        let a = SshPopAttestor::new(host(dir.path()));
        let err = a.challenge(b"{}").await.unwrap_err().to_string();
        assert_eq!(err, "client must provide attestation data to respond to challenge");
        let payload = AttestationData::from_json(&a.payload().await.unwrap()).unwrap();
        let cert = HostCertificate::from_bytes(&payload.certificate).unwrap();
        assert_eq!(cert.principals(), ["host.example.org"]);
        let challenge = Challenge { nonce: vec![3; 32] };
        let response = Response::from_json(&a.challenge(&challenge.to_json()).await.unwrap()).unwrap();
        let digest = spire_attestation::sshpop::combine_nonces(&challenge.nonce, &response.nonce).unwrap();
        cert.verify(&digest, &response.signature.unwrap()).unwrap();
        let err = a.challenge(b"[").await.unwrap_err().to_string();
        assert!(err.starts_with("failed to unmarshal challenge request: "), "{err}");
    }

    #[tokio::test]
    async fn unreadable_or_wrong_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = host(dir.path());
        let missing = SshPopConfig { host_key_path: dir.path().join("nope"), ..config.clone() };
        let err = SshPopAttestor::new(missing).payload().await.unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "failed to read host key file: open {}: no such file or directory",
                dir.path().join("nope").display()
            )
        );
        let not_cert = SshPopConfig { host_cert_path: dir.path().join("host.pub"), ..config.clone() };
        let err = SshPopAttestor::new(not_cert).payload().await.unwrap_err().to_string();
        assert_eq!(err, "failed to get cert and signer from pem: pubkey isn't a certificate");
        let cert_as_key = SshPopConfig { host_key_path: dir.path().join("host-cert.pub"), ..config };
        let err = SshPopAttestor::new(cert_as_key).payload().await.unwrap_err().to_string();
        assert_eq!(err, "failed to get cert and signer from pem: ssh: no key found");
    }
}
