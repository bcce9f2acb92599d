//! NodeAttestor `x509pop`: agents provisioned with an X.509 certificate out of band prove they hold
//! its private key.
//!
//! The payload is the agent's chain, leaf first ([`spire_attestation::x509pop`]). The server checks
//! the chain against the configured root CAs (any extended key usage, as SPIRE's
//! `ExtKeyUsageAny`), requires the digitalSignature key usage, and challenges the agent with a
//! 32-byte nonce; the agent signs `SHA256(nonce || its own nonce)` with the leaf's key (RSA-PSS or
//! ECDSA). The agent is named by [`config::X509PopConfig::agent_path_template`], by default
//! `spiffe://<td>/spire/agent/x509pop/<SHA-1 of the leaf's DER>`, with the selectors of
//! [`verify::selectors`]. Agents renew by attesting again.
//!
//! In `spiffe` mode the roots are the server's own X.509 authorities, read from [`ServerBundle`] at
//! each attestation, and the leaf must be an X509-SVID whose path starts with the configured
//! prefix: an SVID a workload got from this trust domain is exchanged for an agent identity.
//!
//! [`verify`] holds the checks as functions, [`template`] the agent path template, [`config`] the
//! `plugin_data`, [`error`] SPIRE's refusals.

pub mod config;
pub mod error;
pub mod template;
pub mod verify;

use std::path::Path;
use std::sync::Arc;

use spire_attestation::x509pop::{AttestationData, PLUGIN_NAME, Response};
use spire_config::ConfigError;
use spire_identity::TrustDomain;
use tonic::Status;

pub use self::config::{Mode, X509PopConfig};
pub use self::error::AttestError;
use self::template::Template;
use self::verify::LeafInfo;
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
    #[error("plugins.NodeAttestor.x509pop.plugin_data: unable to load trust bundle {}: {reason}", spire_cli::flags::go_quote(&path.display().to_string()))]
    Bundle {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
}

/// The server's current X.509 authorities (DER), as SPIRE's IdentityProvider host service gives
/// them to the plugin.
#[async_trait::async_trait]
pub trait ServerBundle: Send + Sync + std::fmt::Debug {
    /// The authorities now.
    async fn x509_authorities(&self) -> Result<Vec<Vec<u8>>, String>;
}

/// The trust domain's bundle as the datastore holds it: what the CA manager publishes, so a
/// prepared or rotated authority is trusted as soon as it is stored.
pub struct StoredServerBundle {
    /// The server's datastore.
    pub datastore: Arc<dyn spire_datastore::DataStore>,
    /// The server's trust domain.
    pub trust_domain: TrustDomain,
}

impl std::fmt::Debug for StoredServerBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredServerBundle").field("trust_domain", &self.trust_domain).finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl ServerBundle for StoredServerBundle {
    async fn x509_authorities(&self) -> Result<Vec<Vec<u8>>, String> {
        let bundle = self.datastore.fetch_bundle(&self.trust_domain).await.map_err(|e| e.to_string())?;
        Ok(bundle.map(|b| b.x509_authorities.into_iter().map(|a| a.der).collect()).unwrap_or_default())
    }
}

/// Where an attestation's roots come from.
#[derive(Debug, Clone)]
enum Roots {
    /// `external_pki`: read from the CA bundle files at start.
    Fixed(Vec<Vec<u8>>),
    /// `spiffe`: the server's bundle at attestation time, and the SVID path prefix.
    Server { bundle: Arc<dyn ServerBundle>, svid_prefix: String },
}

/// The `x509pop` attestor.
#[derive(Debug)]
pub struct X509PopAttestor {
    trust_domain: TrustDomain,
    roots: Roots,
    template: Template,
    limits: Limits,
}

/// `max_intermediates` and `max_rsa_key_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Certificates allowed after the leaf.
    pub max_intermediates: usize,
    /// RSA key bits allowed in the leaf and the intermediates.
    pub max_rsa_key_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_intermediates: config::DEFAULT_MAX_INTERMEDIATES,
            max_rsa_key_size: config::DEFAULT_MAX_RSA_KEY_SIZE,
        }
    }
}

impl X509PopAttestor {
    /// The attestor for a decoded `config`; the CA bundles are read now. `server_bundle` is the
    /// server's own bundle, used in `spiffe` mode.
    pub fn from_config(
        config: X509PopConfig,
        trust_domain: TrustDomain,
        server_bundle: Arc<dyn ServerBundle>,
    ) -> Result<Self, SetupError> {
        let roots = match config.mode {
            Mode::ExternalPki => {
                let mut roots = Vec::new();
                for path in &config.ca_bundle_paths {
                    roots.extend(load_bundle(path)?);
                }
                Roots::Fixed(roots)
            }
            Mode::Spiffe { svid_prefix } => Roots::Server { bundle: server_bundle, svid_prefix },
        };
        let limits = Limits { max_intermediates: config.max_intermediates, max_rsa_key_size: config.max_rsa_key_size };
        Ok(Self { trust_domain, roots, template: config.agent_path_template, limits })
    }

    /// An `external_pki` attestor trusting `roots` (DER).
    pub fn new(trust_domain: TrustDomain, roots: Vec<Vec<u8>>, template: Template) -> Self {
        Self { trust_domain, roots: Roots::Fixed(roots), template, limits: Limits::default() }
    }

    /// The same attestor with other `limits`.
    pub fn with_limits(self, limits: Limits) -> Self {
        Self { limits, ..self }
    }

    /// A `spiffe` mode attestor trusting the server's `bundle`, exchanging SVIDs under
    /// `svid_prefix` (ending in `/`).
    pub fn spiffe(
        trust_domain: TrustDomain,
        bundle: Arc<dyn ServerBundle>,
        svid_prefix: String,
        template: Template,
    ) -> Self {
        Self { trust_domain, roots: Roots::Server { bundle, svid_prefix }, template, limits: Limits::default() }
    }

    /// Every step of SPIRE's plugin, in its order.
    pub async fn attest_payload(
        &self,
        payload: &[u8],
        challenger: &mut dyn Challenger,
    ) -> Result<AttestResult, Status> {
        if payload.is_empty() {
            return Err(AttestError::MissingPayload.into());
        }
        let data = AttestationData::from_json(payload).map_err(|e| AttestError::BadPayload(e.to_string()))?;
        let (leaf_der, intermediates) = data.certificates.split_first().ok_or(AttestError::NoCertificate)?;
        if intermediates.len() > self.limits.max_intermediates {
            return Err(AttestError::TooManyIntermediates.into());
        }
        let too_large = |der: &[u8]| verify::rsa_key_bits(der).is_some_and(|bits| bits > self.limits.max_rsa_key_size);
        let leaf = LeafInfo::parse(leaf_der)?;
        if too_large(leaf_der) {
            return Err(AttestError::LeafKeyTooLarge.into());
        }
        for (i, der) in intermediates.iter().enumerate() {
            verify::check_parses(der).map_err(|e| AttestError::BadIntermediate(i, e))?;
            if too_large(der) {
                return Err(AttestError::IntermediateKeyTooLarge(i).into());
            }
        }
        let roots = match &self.roots {
            Roots::Fixed(roots) => roots.clone(),
            Roots::Server { bundle, .. } => bundle.x509_authorities().await.map_err(AttestError::TrustBundle)?,
        };
        let ca_fingerprints = verify::verify_chain(leaf_der, intermediates, &roots, std::time::SystemTime::now())?;
        let challenge = verify::generate_challenge(&leaf)?;
        let answer = challenger.challenge(challenge.to_json()).await?;
        let response = Response::from_json(&answer).map_err(|e| AttestError::BadResponse(e.to_string()))?;
        verify::verify_response(&leaf.key, &challenge, &response)
            .map_err(|e| AttestError::ResponseVerification(e.to_string()))?;
        let svid_path_trimmed = match &self.roots {
            Roots::Fixed(_) => String::new(),
            Roots::Server { svid_prefix, .. } => {
                verify::svid_path_trimmed(&leaf, self.trust_domain.as_str(), svid_prefix)?
            }
        };
        let sans = leaf.uri_san_selectors(self.trust_domain.as_str());
        let agent_id = verify::agent_id(&self.trust_domain, &self.template, &leaf, &svid_path_trimmed, &sans)?;
        Ok(AttestResult {
            agent_id,
            selector_values: verify::selectors(&leaf, &ca_fingerprints, &sans),
            can_reattest: true,
        })
    }
}

/// Every certificate in a PEM file.
fn load_bundle(path: &Path) -> Result<Vec<Vec<u8>>, SetupError> {
    let bundle_error = |reason: String| SetupError::Bundle { path: path.to_owned(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| bundle_error(e.to_string()))?;
    spire_identity::x509::certs_from_pem(&text).map_err(|e| bundle_error(e.to_string()))
}

#[async_trait::async_trait]
impl NodeAttestor for X509PopAttestor {
    fn name(&self) -> &str {
        NAME
    }

    async fn attest(&self, payload: &[u8], challenger: &mut dyn Challenger) -> Result<AttestResult, Status> {
        self.attest_payload(payload, challenger).await
    }
}

#[cfg(test)]
mod tests;
