//! `tpm_devid`: the agent proves it holds a DevID key that lives in a genuine TPM.
//!
//! Configuration, as SPIRE's agent plugin takes it:
//!
//! ```hcl
//! NodeAttestor "tpm_devid" {
//!   plugin_data {
//!     devid_cert_path = "/opt/spire/conf/agent/devid.crt.pem"   # PEM, leaf first
//!     devid_priv_path = "/opt/spire/conf/agent/devid.priv.blob" # the TPM's private blob
//!     devid_pub_path  = "/opt/spire/conf/agent/devid.pub.blob"  # the key's TPMT_PUBLIC
//!     # devid_password, owner_hierarchy_password, endorsement_hierarchy_password: "" by default
//!     # tpm_device_path: autodetected in /dev (the one tpmrmN, else the one tpmN)
//!   }
//! }
//! ```
//!
//! The files are read once at start, as SPIRE does. A blob written by tpm2-tools (with its `TPM2B`
//! size prefix) is taken as well as SPIRE's (without). Each attestation opens a
//! [`session::Session`]: the payload carries the DevID chain and public area, the EK certificate
//! and public area, a fresh AK and its certification of the DevID key; the challenge is answered by
//! signing the nonce with the DevID key and activating the credential with the EK for the AK.

pub mod commands;
pub mod session;
pub mod transport;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use spire_attestation::tpm_devid::{AttestationRequest, ChallengeRequest, ChallengeResponse};
use spire_config::{ConfigError, PluginConfig};

use self::session::{Passwords, Session};
use super::{NodeAttestor, NodeAttestorError};

pub use spire_attestation::tpm_devid::PLUGIN_NAME;

/// Where SPIRE looks for a TPM when `tpm_device_path` is unset.
pub const BASE_TPM_DIR: &str = "/dev";

/// The plugin's `plugin_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmDevIdConfig {
    /// `devid_cert_path` (required).
    pub devid_cert_path: PathBuf,
    /// `devid_priv_path` (required).
    pub devid_priv_path: PathBuf,
    /// `devid_pub_path` (required).
    pub devid_pub_path: PathBuf,
    /// The three passwords.
    pub passwords: Passwords,
    /// `tpm_device_path`; `None` to autodetect.
    pub tpm_device_path: Option<PathBuf>,
}

impl TpmDevIdConfig {
    /// Decodes the plugin's data; unknown keys are refused with their line.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        spire_config::plugin_data::decode(plugin, |r| {
            let required = |r: &mut spire_config::Reader<'_, '_>, key: &str| {
                let value = r.non_empty_string(key);
                if value.is_none() {
                    let message = format!("{}: invalid configuration: {key} is required", r.path());
                    let line = r.pos().line;
                    r.diags().error(ConfigError::invalid(message, line));
                }
                PathBuf::from(value.unwrap_or_default())
            };
            let devid_cert_path = required(r, "devid_cert_path");
            let devid_priv_path = required(r, "devid_priv_path");
            let devid_pub_path = required(r, "devid_pub_path");
            let passwords = Passwords {
                devid_key: r.string("devid_password").unwrap_or_default(),
                owner_hierarchy: r.string("owner_hierarchy_password").unwrap_or_default(),
                endorsement_hierarchy: r.string("endorsement_hierarchy_password").unwrap_or_default(),
            };
            let tpm_device_path = r.non_empty_string("tpm_device_path").map(PathBuf::from);
            Self { devid_cert_path, devid_priv_path, devid_pub_path, passwords, tpm_device_path }
        })
    }
}

/// Why the plugin failed (SPIRE's wording).
#[derive(Debug, thiserror::Error)]
pub enum TpmDevIdError {
    /// No TPM path configured and none found.
    #[error("tpm autodetection failed: {0}")]
    Autodetect(String),
    /// A DevID file could not be read.
    #[error("unable to load DevID files: {0}")]
    Files(String),
    /// The TPM session could not be set up.
    #[error("unable to start a new TPM session: {0}")]
    Session(#[from] session::SessionError),
    /// The EK certificate could not be read.
    #[error("unable to get endorsement certificate: {0}")]
    EkCert(session::OperationError),
    /// The AK could not certify the DevID key.
    #[error("unable to certify DevID key: {0}")]
    Certify(session::OperationError),
    /// The challenge is not a `ChallengeRequest`.
    #[error("unable to unmarshall challenges: {0}")]
    BadChallenge(String),
    /// The nonce could not be signed.
    #[error("unable to solve proof of possession challenge: {0}")]
    Possession(session::OperationError),
    /// No credential to activate.
    #[error("received empty credential activation challenge from server")]
    NoCredential,
    /// The credential could not be activated.
    #[error("unable to solve proof of residency challenge: {0}")]
    Residency(session::OperationError),
    /// A challenge before any payload.
    #[error("no TPM session: the payload was not sent")]
    NoSession,
    /// The blocking task died.
    #[error("TPM task failed: {0}")]
    Task(String),
}

/// Attests with a TPM-resident DevID.
#[derive(Debug)]
pub struct TpmDevIdAttestor {
    device: PathBuf,
    devid_cert: Vec<Vec<u8>>,
    devid_pub: Vec<u8>,
    devid_priv: Vec<u8>,
    passwords: Passwords,
    session: Arc<Mutex<Option<Session>>>,
}

/// The contents of a `TPM2B_*` file, whether or not it kept its 2-byte size prefix.
pub fn strip_tpm2b(blob: Vec<u8>) -> Vec<u8> {
    match blob.get(..2) {
        Some(&[hi, lo]) if usize::from(u16::from_be_bytes([hi, lo])) == blob.len() - 2 => blob[2..].to_vec(),
        _ => blob,
    }
}

impl TpmDevIdAttestor {
    /// The attestor for `config`: the TPM path is autodetected if unset and the DevID files read
    /// now, as SPIRE's `Configure` does.
    pub fn from_config(config: TpmDevIdConfig) -> Result<Self, TpmDevIdError> {
        let device = match config.tpm_device_path {
            Some(p) => p,
            None => transport::autodetect(Path::new(BASE_TPM_DIR)).map_err(TpmDevIdError::Autodetect)?,
        };
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("open {}: {e}", p.display()));
        let text = std::fs::read_to_string(&config.devid_cert_path).map_err(|e| {
            TpmDevIdError::Files(format!("cannot load certificate(s): open {}: {e}", config.devid_cert_path.display()))
        })?;
        let devid_cert = spire_identity::x509::certs_from_pem(&text)
            .map_err(|e| TpmDevIdError::Files(format!("cannot load certificate(s): {e}")))?;
        if devid_cert.is_empty() {
            return Err(TpmDevIdError::Files("cannot load certificate(s): no PEM blocks".into()));
        }
        let devid_priv = strip_tpm2b(
            read(&config.devid_priv_path).map_err(|e| TpmDevIdError::Files(format!("cannot load private key: {e}")))?,
        );
        let devid_pub = strip_tpm2b(
            read(&config.devid_pub_path).map_err(|e| TpmDevIdError::Files(format!("cannot load public key: {e}")))?,
        );
        Ok(Self { device, devid_cert, devid_pub, devid_priv, passwords: config.passwords, session: Arc::default() })
    }

    fn attestation_request(&self) -> Result<(Session, AttestationRequest), TpmDevIdError> {
        let mut session = Session::open(&self.device, &self.devid_pub, &self.devid_priv, &self.passwords)?;
        let ek_cert = session.ek_cert().map_err(TpmDevIdError::EkCert)?;
        let (certified_devid, certification_signature) = session.certify_devid().map_err(TpmDevIdError::Certify)?;
        let request = AttestationRequest {
            devid_cert: self.devid_cert.clone(),
            devid_pub: self.devid_pub.clone(),
            ek_cert,
            ek_pub: session.ek_public().to_vec(),
            ak_pub: session.ak_public().to_vec(),
            certified_devid,
            certification_signature,
        };
        Ok((session, request))
    }
}

fn answer(session: &mut Session, challenge: &[u8]) -> Result<Vec<u8>, TpmDevIdError> {
    let challenges = ChallengeRequest::from_json(challenge).map_err(|e| TpmDevIdError::BadChallenge(e.to_string()))?;
    let devid = session.sign_nonce(&challenges.devid).map_err(TpmDevIdError::Possession)?;
    let cred = challenges.cred_activation.ok_or(TpmDevIdError::NoCredential)?;
    let cred_activation =
        session.activate_credential(&cred.credential, &cred.secret).map_err(TpmDevIdError::Residency)?;
    Ok(ChallengeResponse { devid, cred_activation }.to_json())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TpmDevIdError> + Send + 'static,
) -> Result<T, NodeAttestorError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NodeAttestorError::plugin(TpmDevIdError::Task(e.to_string())))?
        .map_err(NodeAttestorError::plugin)
}

#[async_trait]
impl NodeAttestor for TpmDevIdAttestor {
    fn name(&self) -> &str {
        PLUGIN_NAME
    }

    async fn payload(&self) -> Result<Vec<u8>, NodeAttestorError> {
        // A previous attempt's session is closed first: its handles count against the TPM's slots.
        drop(self.session.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
        let me = Self {
            device: self.device.clone(),
            devid_cert: self.devid_cert.clone(),
            devid_pub: self.devid_pub.clone(),
            devid_priv: self.devid_priv.clone(),
            passwords: self.passwords.clone(),
            session: Arc::clone(&self.session),
        };
        blocking(move || {
            let (session, request) = me.attestation_request()?;
            *me.session.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(session);
            Ok(request.to_json())
        })
        .await
    }

    async fn challenge(&self, challenge: &[u8]) -> Result<Vec<u8>, NodeAttestorError> {
        let slot = Arc::clone(&self.session);
        let challenge = challenge.to_vec();
        blocking(move || {
            // The session ends with the challenge, as SPIRE's does with AidAttestation.
            let mut session = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            let session = session.as_mut().ok_or(TpmDevIdError::NoSession)?;
            answer(session, &challenge)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(data: &str) -> Result<TpmDevIdConfig, String> {
        let plugin = PluginConfig::built_in("NodeAttestor", "tpm_devid", data).unwrap();
        TpmDevIdConfig::from_plugin(&plugin).map_err(|e| e.to_string())
    }

    #[test]
    fn config_as_spire() {
        let c = config(
            "devid_cert_path = \"/c\"\ndevid_priv_path = \"/k\"\ndevid_pub_path = \"/p\"\ndevid_password = \"d\"\nowner_hierarchy_password = \"o\"\nendorsement_hierarchy_password = \"e\"\ntpm_device_path = \"/dev/tpmrm0\"",
        )
        .unwrap();
        assert_eq!(
            c.passwords,
            Passwords { devid_key: "d".into(), owner_hierarchy: "o".into(), endorsement_hierarchy: "e".into() }
        );
        assert_eq!(c.tpm_device_path, Some(PathBuf::from("/dev/tpmrm0")));
        let err = config("devid_priv_path = \"/k\"").unwrap_err();
        assert!(err.contains("invalid configuration: devid_cert_path is required"), "{err}");
        assert!(err.contains("invalid configuration: devid_pub_path is required"), "{err}");
    }

    #[test]
    fn blobs_with_or_without_their_size_prefix() {
        assert_eq!(strip_tpm2b(vec![0, 2, 7, 8]), [7, 8]);
        assert_eq!(strip_tpm2b(vec![0, 0x23, 0, 0x0b]), [0, 0x23, 0, 0x0b]);
    }

    #[test]
    fn missing_files_are_spire_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = TpmDevIdConfig {
            devid_cert_path: dir.path().join("none.pem"),
            devid_priv_path: dir.path().join("k"),
            devid_pub_path: dir.path().join("p"),
            passwords: Passwords::default(),
            tpm_device_path: Some(dir.path().join("tpm")),
        };
        let err = TpmDevIdAttestor::from_config(cfg).unwrap_err().to_string();
        assert!(err.starts_with("unable to load DevID files: cannot load certificate(s): open "), "{err}");
    }
}

#[cfg(test)]
mod swtpm_tests;
