//! NodeAttestor `tpm_devid`: agents provisioned with a DevID (a TPM-resident key certified by a
//! DevID CA) prove that they hold the key and that it lives in a genuine TPM.
//!
//! The payload ([`spire_attestation::tpm_devid::AttestationRequest`]) carries the DevID chain, the
//! DevID key's TPM public area, the TPM's endorsement certificate and key, a fresh attestation key
//! (AK) and the AK's TPM2_Certify over the DevID key. The server checks the DevID chain against
//! `devid_ca_path`, the EK certificate against `endorsement_ca_path` and against the EK itself, and
//! the certification; then it challenges the agent twice: a 32-byte nonce the DevID key must sign
//! (possession), and a credential made for the AK's name and encrypted to the EK
//! ([`credential`]) that only TPM2_ActivateCredential in that TPM can open (residency). The agent
//! is `spiffe://<td>/spire/agent/tpm_devid/<SHA-1 of the DevID certificate>` with the selectors of
//! [`verify::selectors`], and re-attests to renew, as in SPIRE v1.13.3.

pub mod config;
pub mod credential;
pub mod error;
pub mod verify;

use std::path::Path;
use std::time::SystemTime;

use spire_attestation::tpm_devid::tpm::Public;
use spire_attestation::tpm_devid::{
    AttestationRequest, ChallengeRequest, ChallengeResponse, CredActivation, DEVID_NONCE_LEN, PLUGIN_NAME,
};
use spire_config::{ConfigError, PluginConfig};
use spire_identity::TrustDomain;
use tonic::Status;

pub use self::config::TpmDevIdConfig;
pub use self::error::AttestError;
use super::{AttestResult, Challenger, NodeAttestor};

/// The attestation type and plugin name.
pub const NAME: &str = PLUGIN_NAME;

/// Why the plugin could not be set up at server start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The `plugin_data` is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A CA bundle could not be read (SPIRE's wording).
    #[error("plugins.NodeAttestor.tpm_devid.plugin_data: unable to load {what} trust bundle: {reason}")]
    Bundle {
        /// `DevID` or `endorsement`.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

/// The `tpm_devid` attestor.
#[derive(Debug)]
pub struct TpmDevIdAttestor {
    trust_domain: TrustDomain,
    devid_roots: Vec<Vec<u8>>,
    ek_roots: Vec<Vec<u8>>,
}

impl TpmDevIdAttestor {
    /// The attestor `plugin` configures.
    pub fn from_plugin(plugin: &PluginConfig, trust_domain: TrustDomain) -> Result<Self, SetupError> {
        Self::from_config(TpmDevIdConfig::from_plugin(plugin)?, trust_domain)
    }

    /// The attestor for a decoded `config`; the CA bundles are read now.
    pub fn from_config(config: TpmDevIdConfig, trust_domain: TrustDomain) -> Result<Self, SetupError> {
        let devid_roots = load_bundle(&config.devid_ca_path, "DevID")?;
        let ek_roots = load_bundle(&config.endorsement_ca_path, "endorsement")?;
        Ok(Self::new(trust_domain, devid_roots, ek_roots))
    }

    /// An attestor trusting `devid_roots` and `ek_roots` (DER).
    pub fn new(trust_domain: TrustDomain, devid_roots: Vec<Vec<u8>>, ek_roots: Vec<Vec<u8>>) -> Self {
        Self { trust_domain, devid_roots, ek_roots }
    }

    /// Every step of SPIRE's plugin, in its order.
    pub async fn attest_payload(
        &self,
        payload: &[u8],
        challenger: &mut dyn Challenger,
    ) -> Result<AttestResult, Status> {
        let now = SystemTime::now();
        if payload.is_empty() {
            return Err(AttestError::MissingPayload.into());
        }
        let data = AttestationRequest::from_json(payload).map_err(|e| AttestError::BadPayload(e.to_string()))?;
        let (leaf, intermediates) = data.devid_cert.split_first().ok_or(AttestError::NoCertificate)?;
        verify::check_parses(leaf).map_err(AttestError::BadLeaf)?;
        for (i, der) in intermediates.iter().enumerate() {
            verify::check_parses(der).map_err(|e| AttestError::BadIntermediate(i, e))?;
        }
        let ca_fingerprints =
            verify::verify_chain(leaf, intermediates, &self.devid_roots, now).map_err(AttestError::DevIdChain)?;
        let mut devid_nonce = vec![0u8; DEVID_NONCE_LEN];
        aws_lc_rs::rand::fill(&mut devid_nonce).map_err(|_| AttestError::Random("no random bytes".into()))?;
        let (cred_activation, credential) = self.residency_challenge(&data, now)?;

        let challenge = ChallengeRequest { devid: devid_nonce.clone(), cred_activation: Some(cred_activation) };
        let answer = challenger.challenge(challenge.to_json()).await?;
        let response = ChallengeResponse::from_json(&answer).map_err(|e| AttestError::BadResponse(e.to_string()))?;
        verify::verify_devid_signature(leaf, &devid_nonce, &response.devid).map_err(AttestError::DevIdChallenge)?;
        if aws_lc_rs::constant_time::verify_slices_are_equal(&response.cred_activation, &credential).is_err() {
            return Err(AttestError::CredentialActivation.into());
        }
        Ok(AttestResult {
            agent_id: verify::agent_id(&self.trust_domain, leaf)?,
            selector_values: verify::selectors(leaf, &ca_fingerprints),
            can_reattest: true,
        })
    }

    /// Checks that the DevID key lives in the TPM of the EK (as far as the payload can show) and
    /// returns the credential activation challenge with the credential it hides (SPIRE's
    /// `verifyDevIDResidency`).
    fn residency_challenge(
        &self,
        data: &AttestationRequest,
        now: SystemTime,
    ) -> Result<(CredActivation, Vec<u8>), AttestError> {
        for (field, message) in [
            (&data.ak_pub, "missing attestation key public blob"),
            (&data.devid_pub, "missing DevID key public blob"),
            (&data.ek_cert, "missing endorsement certificate"),
            (&data.ek_pub, "missing endorsement key public blob"),
        ] {
            if field.is_empty() {
                return Err(AttestError::Missing(message));
            }
        }
        verify::check_parses(&data.ek_cert).map_err(AttestError::BadEkCert)?;
        let devid = Public::parse(&data.devid_pub).map_err(|e| AttestError::BadDevIdPub(e.to_string()))?;
        let ak = Public::parse(&data.ak_pub).map_err(|e| AttestError::BadAkPub(e.to_string()))?;
        let ek = Public::parse(&data.ek_pub).map_err(|_| AttestError::BadEkPub)?;
        verify::ek_matches(&data.ek_cert, &ek).map_err(AttestError::EkMismatch)?;
        verify::verify_chain(&data.ek_cert, &[], &self.ek_roots, now).map_err(AttestError::EkChain)?;
        verify::residency_attributes(&ak, &devid)?;
        verify::verify_certification(&ak, &devid, &data.certified_devid, &data.certification_signature)
            .map_err(AttestError::Certification)?;
        verify::devid_key_matches(&data.devid_cert[0], &devid).map_err(AttestError::Certification)?;
        let name = ak.name().map_err(|e| AttestError::CredentialChallenge(e.to_string()))?;
        let hash = spire_attestation::tpm_devid::tpm::HashAlg::from_tpm(ek.name_alg)
            .map_err(|e| AttestError::CredentialChallenge(e.to_string()))?;
        let mut secret = vec![0u8; hash.digest_alg().output_len()];
        aws_lc_rs::rand::fill(&mut secret).map_err(|_| AttestError::CredentialChallenge("no random bytes".into()))?;
        let made = credential::make_credential(&ek, &name, &secret)
            .map_err(|e| AttestError::CredentialChallenge(e.to_string()))?;
        Ok((CredActivation { credential: made.credential_blob, secret: made.encrypted_secret }, secret))
    }
}

/// Every certificate in a PEM file.
fn load_bundle(path: &Path, what: &'static str) -> Result<Vec<Vec<u8>>, SetupError> {
    let bundle_error = |reason: String| SetupError::Bundle { what, reason };
    let text = std::fs::read_to_string(path).map_err(|e| bundle_error(format!("{}: {e}", path.display())))?;
    let certs = spire_identity::x509::certs_from_pem(&text).map_err(|e| bundle_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(bundle_error(format!("no certificates found in {}", path.display())));
    }
    Ok(certs)
}

#[async_trait::async_trait]
impl NodeAttestor for TpmDevIdAttestor {
    fn name(&self) -> &str {
        NAME
    }

    async fn attest(&self, payload: &[u8], challenger: &mut dyn Challenger) -> Result<AttestResult, Status> {
        self.attest_payload(payload, challenger).await
    }
}

#[cfg(test)]
mod tests;
