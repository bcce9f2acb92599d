//! UpstreamAuthority plugins: an outside CA that signs the server's intermediate CA, so that the trust
//! domain chains up to a root the operator already trusts.

mod disk;

pub use disk::DiskUpstreamAuthority;

use std::time::{Duration, SystemTime};

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
}

/// What the server asks of its upstream: sign our CA key.
#[derive(Debug, Clone)]
pub struct CaRequest<'a> {
    /// The trust domain the CA serves.
    pub trust_domain: &'a TrustDomain,
    /// The CA's public key, SubjectPublicKeyInfo DER.
    pub public_key_der: &'a [u8],
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

/// An authority that signs the server's CA certificates.
#[async_trait::async_trait]
pub trait UpstreamAuthority: Send + Sync + std::fmt::Debug {
    /// Signs a CA certificate for `request`.
    async fn mint_x509_ca(&self, request: CaRequest<'_>) -> Result<MintedCa, UpstreamAuthorityError>;
}
