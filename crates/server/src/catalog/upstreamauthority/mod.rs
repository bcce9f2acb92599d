//! UpstreamAuthority plugins: an outside CA that signs the server's intermediate CA, so that the trust
//! domain chains up to a root the operator already trusts.

mod csr;
mod disk;
pub mod spire;

pub use csr::ca_csr;
pub use disk::DiskUpstreamAuthority;
pub use spire::SpireUpstreamAuthority;

use std::time::{Duration, SystemTime};

use spire_datastore::JwtKey;
use spire_identity::TrustDomain;
use spire_identity::x509::Subject;

/// Why the upstream authority failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamAuthorityError {
    /// A configured file is missing or unreadable.
    #[error("upstream authority file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The upstream material is inconsistent (key does not match, not a CA...).
    #[error("upstream authority: {0}")]
    Invalid(String),
    /// Signing failed.
    #[error("upstream authority could not sign the CA: {0}")]
    Sign(String),
    /// The plugin failed with SPIRE's message for the step that failed.
    #[error("{plugin}: {message}")]
    Plugin {
        /// `upstreamauthority(<name>)`, so that the log names the plugin as SPIRE does.
        plugin: String,
        /// What failed.
        message: String,
    },
}

/// What the server asks of its upstream: sign our CA key.
#[derive(Debug, Clone)]
pub struct CaRequest<'a> {
    /// The trust domain the CA serves.
    pub trust_domain: &'a TrustDomain,
    /// The CA's public key, SubjectPublicKeyInfo DER.
    pub public_key_der: &'a [u8],
    /// A PKCS#10 request for the CA signed with its key ([`ca_csr`]): what an upstream server
    /// (SPIRE's `MintX509CAAndSubscribe`) is sent.
    pub csr: &'a [u8],
    /// The CA subject (SPIRE's `ca_subject`).
    pub subject: Subject,
    /// Now.
    pub now: SystemTime,
    /// Requested lifetime (`ca_ttl`); the upstream may shorten it.
    pub ttl: Duration,
}

/// What the upstream answers.
#[derive(Debug, Clone)]
pub struct MintedCa {
    /// Our new CA first, then any upstream intermediates up to (not including) the root.
    pub chain: Vec<Vec<u8>>,
    /// The upstream roots, which go into the trust bundle.
    pub upstream_roots: Vec<Vec<u8>>,
}

/// The upstream's bundle as it changes after the first answer: what SPIRE's plugins stream on
/// `MintX509CAAndSubscribe`, `PublishJWTKeyAndSubscribe` and `SubscribeToLocalBundle`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamBundle {
    /// The upstream X.509 roots, DER.
    pub x509_roots: Vec<Vec<u8>>,
    /// The JWT keys of the whole topology.
    pub jwt_keys: Vec<JwtKey>,
}

/// An authority that signs the server's CA certificates.
#[async_trait::async_trait]
pub trait UpstreamAuthority: Send + Sync + std::fmt::Debug {
    /// Signs a CA certificate for `request`.
    async fn mint_x509_ca(&self, request: CaRequest<'_>) -> Result<MintedCa, UpstreamAuthorityError>;

    /// Publishes our JWT signing key upstream and returns the JWT keys the upstream then holds,
    /// which our bundle should carry; `None` when the plugin cannot publish (SPIRE's `Unimplemented`:
    /// the server then keeps its own key only).
    async fn publish_jwt_key(&self, _key: &JwtKey) -> Result<Option<Vec<JwtKey>>, UpstreamAuthorityError> {
        Ok(None)
    }

    /// Later changes of the upstream bundle, for plugins that follow it; `None` for those that do not.
    fn bundle_updates(&self) -> Option<tokio::sync::watch::Receiver<UpstreamBundle>> {
        None
    }
}
