//! The authorities that sign right now, shared by every API handler.
//!
//! The rotator swaps in a new set when it activates a slot; handlers take a cheap `Arc` snapshot, so a
//! rotation never blocks or tears a signing operation.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use spire_identity::jwt::{JwtSigner, JwtSvidParams, jwt_svid_claims, sign_jwt_claims, sign_jwt_svid};
use spire_identity::x509::{CaParams, Issuer, Subject, SvidParams, sign_ca, sign_svid};
use spire_identity::{SpiffeId, TrustDomain};

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// No authority is active yet (startup) or JWT-SVIDs are disabled.
    #[error("{0}")]
    Unavailable(&'static str),
    /// The request cannot be signed as asked.
    #[error("{0}")]
    InvalidArgument(String),
    /// The crypto layer failed.
    #[error("failed to sign: {0}")]
    Sign(String),
}

/// The active X.509 CA.
#[derive(Debug, Clone)]
pub struct X509Authority {
    /// Certificate and key.
    pub issuer: Issuer,
    /// What follows a leaf in the chain handed out: empty for a self-signed CA (it is in the bundle),
    /// otherwise our CA and the upstream intermediates.
    pub chain_tail: Vec<Vec<u8>>,
    /// Hex subject key ID.
    pub authority_id: String,
}

/// The active JWT signing key.
#[derive(Debug, Clone)]
pub struct JwtAuthority {
    /// Key, `kid` and expiry cap.
    pub signer: JwtSigner,
    /// When the key expires.
    pub not_after: SystemTime,
}

/// One consistent snapshot of the signing authorities.
#[derive(Debug, Clone)]
pub struct ActiveAuthorities {
    /// Signs X509-SVIDs and downstream CAs.
    pub x509: X509Authority,
    /// Signs JWT-SVIDs; `None` when JWT-SVIDs are disabled.
    pub jwt: Option<JwtAuthority>,
}

/// An X509-SVID as issued.
#[derive(Debug, Clone)]
pub struct SignedX509 {
    /// Leaf first, then [`X509Authority::chain_tail`].
    pub chain: Vec<Vec<u8>>,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A JWT-SVID as issued.
#[derive(Debug, Clone)]
pub struct SignedJwt {
    /// The compact token.
    pub token: String,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

/// The server's signing front: what the APIs call.
#[derive(Debug)]
pub struct Ca {
    trust_domain: TrustDomain,
    jwt_issuer: Option<String>,
    active: RwLock<Option<Arc<ActiveAuthorities>>>,
}

/// Unix seconds of `t` (0 before the epoch).
pub fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Ca {
    /// A CA with nothing active yet.
    pub fn new(trust_domain: TrustDomain, jwt_issuer: Option<String>) -> Self {
        Self { trust_domain, jwt_issuer, active: RwLock::new(None) }
    }

    /// The trust domain it signs for.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// Installs a new snapshot of active authorities.
    pub fn set_active(&self, authorities: ActiveAuthorities) {
        *self.active.write().expect("lock poisoned") = Some(Arc::new(authorities));
    }

    /// The current snapshot.
    pub fn active(&self) -> Result<Arc<ActiveAuthorities>, CaError> {
        self.active.read().expect("lock poisoned").clone().ok_or(CaError::Unavailable("server CA is not ready"))
    }

    /// Signs an X509-SVID for `spiffe_id` over `public_key_der`, valid `ttl` (capped at the CA's expiry).
    pub fn sign_x509_svid(
        &self,
        spiffe_id: &SpiffeId,
        public_key_der: &[u8],
        dns_names: &[String],
        subject: Option<Subject>,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<SignedX509, CaError> {
        if !spiffe_id.is_member_of(&self.trust_domain) {
            return Err(CaError::InvalidArgument(format!(
                "SPIFFE ID {spiffe_id} is not a member of trust domain {}",
                self.trust_domain
            )));
        }
        let active = self.active()?;
        let x509 = &active.x509;
        let leaf = sign_svid(&SvidParams { spiffe_id, public_key_der, dns_names, subject, now, ttl }, &x509.issuer)
            .map_err(|e| CaError::Sign(e.to_string()))?;
        let mut chain = Vec::with_capacity(1 + x509.chain_tail.len());
        chain.push(leaf);
        chain.extend(x509.chain_tail.iter().cloned());
        Ok(SignedX509 { chain, expires_at: unix((now + ttl).min(x509.issuer.not_after())) })
    }

    /// Signs a CA certificate for a downstream server's key; returns it followed by our chain tail,
    /// as SPIRE's `makeCertChain`: nothing more for a self-signed CA, whose root is in the bundle.
    pub fn sign_downstream_ca(
        &self,
        public_key_der: &[u8],
        ttl: Duration,
        now: SystemTime,
    ) -> Result<Vec<Vec<u8>>, CaError> {
        let active = self.active()?;
        let x509 = &active.x509;
        let der = sign_ca(
            &CaParams { trust_domain: &self.trust_domain, public_key_der, subject: Subject::default_ca(), now, ttl },
            &x509.issuer,
        )
        .map_err(|e| CaError::Sign(e.to_string()))?;
        let mut chain = vec![der];
        chain.extend(x509.chain_tail.iter().cloned());
        Ok(chain)
    }

    /// The claims of a JWT-SVID [`Ca::sign_jwt_svid`] would sign, for CredentialComposer plugins to
    /// change before [`Ca::sign_jwt_claims`] signs them.
    pub fn jwt_svid_claims(
        &self,
        spiffe_id: &SpiffeId,
        audience: &[String],
        ttl: Duration,
        jti: Option<&str>,
        now: SystemTime,
    ) -> Result<serde_json::Map<String, serde_json::Value>, CaError> {
        if audience.is_empty() {
            return Err(CaError::InvalidArgument("at least one audience is required".into()));
        }
        let active = self.active()?;
        let jwt = active.jwt.as_ref().ok_or(CaError::Unavailable("JWT-SVIDs are disabled on this server"))?;
        let params = JwtSvidParams { spiffe_id, audience, now, ttl, issuer: self.jwt_issuer.as_deref(), jti };
        jwt_svid_claims(&params, &jwt.signer).map_err(|e| CaError::Sign(e.to_string()))
    }

    /// Signs composed JWT-SVID claims with the active JWT key; `exp` and `iat` are read back from
    /// them.
    pub fn sign_jwt_claims(&self, claims: &serde_json::Map<String, serde_json::Value>) -> Result<SignedJwt, CaError> {
        let active = self.active()?;
        let jwt = active.jwt.as_ref().ok_or(CaError::Unavailable("JWT-SVIDs are disabled on this server"))?;
        let token = sign_jwt_claims(claims, &jwt.signer).map_err(|e| CaError::Sign(e.to_string()))?;
        let number = |name: &str| claims.get(name).and_then(serde_json::Value::as_i64).unwrap_or_default();
        Ok(SignedJwt { token, issued_at: number("iat"), expires_at: number("exp") })
    }

    /// Signs a JWT-SVID; `jti` adds a unique token ID when the entry asks for one.
    pub fn sign_jwt_svid(
        &self,
        spiffe_id: &SpiffeId,
        audience: &[String],
        ttl: Duration,
        jti: Option<&str>,
        now: SystemTime,
    ) -> Result<SignedJwt, CaError> {
        if audience.is_empty() {
            return Err(CaError::InvalidArgument("at least one audience is required".into()));
        }
        let active = self.active()?;
        let jwt = active.jwt.as_ref().ok_or(CaError::Unavailable("JWT-SVIDs are disabled on this server"))?;
        let params = JwtSvidParams { spiffe_id, audience, now, ttl, issuer: self.jwt_issuer.as_deref(), jti };
        let token = sign_jwt_svid(&params, &jwt.signer).map_err(|e| CaError::Sign(e.to_string()))?;
        Ok(SignedJwt { token, issued_at: unix(now), expires_at: unix((now + ttl).min(jwt.not_after)) })
    }
}
