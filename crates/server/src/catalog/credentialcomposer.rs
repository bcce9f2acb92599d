//! CredentialComposer plugins: may change the attributes of the credentials the server issues (the
//! subject and DNS names of X509-SVIDs, the claims of JWT-SVIDs) before they are signed. This build
//! has no built-in composer; external ones run behind this trait, in configuration order, each
//! seeing what the previous one composed.
//!
//! Composed for: agent and workload X509-SVIDs, workload JWT-SVIDs. Not (yet) for the server's CA
//! and its own X509-SVID, which SPIRE also offers to composers.

use spire_identity::SpiffeId;
use spire_identity::x509::Subject;
use tonic::Status;

/// What a composer may change in an X509-SVID.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct X509SvidAttributes {
    /// The subject.
    pub subject: Subject,
    /// The DNS SANs.
    pub dns_names: Vec<String>,
}

/// Which X509-SVID is being composed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum X509SvidKind {
    /// An agent's SVID.
    Agent,
    /// A workload's SVID.
    Workload,
}

/// A CredentialComposer plugin.
#[async_trait::async_trait]
pub trait CredentialComposer: Send + Sync + std::fmt::Debug {
    /// The plugin's name.
    fn name(&self) -> &str;

    /// The attributes of the X509-SVID of `id` over `public_key` (SubjectPublicKeyInfo DER).
    async fn compose_x509_svid(
        &self,
        kind: X509SvidKind,
        id: &SpiffeId,
        public_key: &[u8],
        attributes: X509SvidAttributes,
    ) -> Result<X509SvidAttributes, Status>;

    /// The claims of a workload JWT-SVID for `id`.
    async fn compose_workload_jwt_svid(
        &self,
        id: &SpiffeId,
        claims: serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, Status>;
}

/// The configured composers, applied in order.
#[derive(Debug, Clone, Default)]
pub struct CredentialComposers {
    composers: Vec<std::sync::Arc<dyn CredentialComposer>>,
}

impl CredentialComposers {
    /// The given composers, in configuration order.
    pub fn new(composers: Vec<std::sync::Arc<dyn CredentialComposer>>) -> Self {
        Self { composers }
    }

    /// Whether there is none (the common case: nothing to call).
    pub fn is_empty(&self) -> bool {
        self.composers.is_empty()
    }

    /// Runs every composer on an X509-SVID's attributes.
    pub async fn x509_svid(
        &self,
        kind: X509SvidKind,
        id: &SpiffeId,
        public_key: &[u8],
        mut attributes: X509SvidAttributes,
    ) -> Result<X509SvidAttributes, Status> {
        for composer in &self.composers {
            attributes = composer.compose_x509_svid(kind, id, public_key, attributes).await?;
        }
        Ok(attributes)
    }

    /// Runs every composer on a workload JWT-SVID's claims.
    pub async fn workload_jwt_svid(
        &self,
        id: &SpiffeId,
        mut claims: serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, Status> {
        for composer in &self.composers {
            claims = composer.compose_workload_jwt_svid(id, claims).await?;
        }
        Ok(claims)
    }
}
