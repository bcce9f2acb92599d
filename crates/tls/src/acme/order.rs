//! Obtaining a certificate: the account (cached, or registered with the contact e-mail and the
//! terms of service as configured), then an order for one domain proven by tls-alpn-01 on the
//! serving port, finalized with a CSR for a fresh ECDSA P-256 key.

use std::time::SystemTime;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};

use super::cache::{CacheError, DiskCache};
use super::challenge::{self, ChallengeError, Challenges};
use super::http::{AcmeHttp, boxed};
use super::issued::{Issued, IssuedError};

/// SPIRE's warning when the terms of service are not accepted (the CA then refuses the account).
pub(crate) const TOS_NOT_ACCEPTED: &str =
    "ACME Terms of Service have not been accepted. See the `tos_accepted` configurable";

/// Why no certificate was obtained this time.
#[derive(Debug, thiserror::Error)]
pub enum ObtainError {
    /// The CA or the protocol failed (the CA's problem document is in the message).
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    /// The CA offers no tls-alpn-01 challenge, the only one answered.
    #[error("ACME: the CA offers no tls-alpn-01 challenge for {0}")]
    NoTlsAlpn(String),
    /// The authorization or the order ended in a state other than the one expected.
    #[error("ACME: {what} for {domain} is {status}")]
    Status {
        /// Order or authorization.
        what: &'static str,
        /// The domain.
        domain: String,
        /// Its state (with the CA's problem, if any).
        status: String,
    },
    /// The challenge certificate could not be made.
    #[error(transparent)]
    Challenge(#[from] ChallengeError),
    /// The CSR could not be made.
    #[error("ACME certificate request: {0}")]
    Csr(#[from] rcgen::Error),
    /// What the CA issued cannot be served.
    #[error("ACME: the issued certificate is unusable: {0}")]
    Issued(#[from] IssuedError),
    /// The account could not be cached or read.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The cached account could not be written.
    #[error("ACME account: {0}")]
    Json(#[from] serde_json::Error),
}

/// The ACME account settings.
#[derive(Debug, Clone)]
pub(crate) struct AccountSettings {
    pub(crate) directory_url: String,
    pub(crate) email: String,
    pub(crate) tos_accepted: bool,
}

/// The cached account if it belongs to this directory, else a new registration (cached).
pub(crate) async fn account(
    settings: &AccountSettings,
    cache: &DiskCache,
    http: &AcmeHttp,
) -> Result<Account, ObtainError> {
    if let Some(json) = cache.account()? {
        let same_directory = serde_json::from_str::<serde_json::Value>(&json)
            .is_ok_and(|v| v["directory"].as_str() == Some(settings.directory_url.as_str()));
        if let (true, Ok(credentials)) = (same_directory, serde_json::from_str::<AccountCredentials>(&json)) {
            return Ok(Account::builder_with_http(boxed(http)).from_credentials(credentials).await?);
        }
    }
    let log = (&settings.directory_url, &settings.email);
    if settings.tos_accepted {
        tracing::info!(directory_url = log.0, email = log.1, "ACME Terms of Service accepted");
    } else {
        tracing::warn!(directory_url = log.0, email = log.1, "{TOS_NOT_ACCEPTED}");
    }
    let contact = format!("mailto:{}", settings.email);
    let contacts = [contact.as_str()];
    let new = NewAccount {
        contact: if settings.email.is_empty() { &[] } else { &contacts },
        terms_of_service_agreed: settings.tos_accepted,
        only_return_existing: false,
    };
    let (account, credentials) =
        Account::builder_with_http(boxed(http)).create(&new, settings.directory_url.clone(), None).await?;
    cache.put_account(&serde_json::to_string(&credentials)?)?;
    tracing::info!(directory_url = log.0, account = account.id(), "ACME account registered");
    Ok(account)
}

/// Orders a certificate for `domain`, answering its tls-alpn-01 challenge through `challenges`;
/// returns it with the PEM text to cache.
pub(crate) async fn obtain(
    account: &Account,
    domain: &str,
    challenges: &Challenges,
) -> Result<(Issued, String), ObtainError> {
    let identifiers = [Identifier::Dns(domain.to_owned())];
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let validated = prove(&mut order, domain, challenges).await;
    challenges.remove(domain);
    match validated? {
        OrderStatus::Ready => {}
        other => {
            let problem = order.state().error.as_ref().map(|p| format!(": {p}")).unwrap_or_default();
            return Err(ObtainError::Status {
                what: "the order",
                domain: domain.into(),
                status: format!("{other:?}{problem}"),
            });
        }
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![domain.to_owned()])?;
    params.distinguished_name = DistinguishedName::new();
    order.finalize_csr(params.serialize_request(&key)?.der()).await?;
    let chain = order.poll_certificate(&RetryPolicy::default()).await?;
    let pem = format!("{}{chain}", key.serialize_pem());
    Ok((Issued::parse(domain, pem.as_bytes(), SystemTime::now())?, pem))
}

/// Sets up and triggers the challenge of every pending authorization, then waits for the order to
/// leave `pending`.
async fn prove(
    order: &mut instant_acme::Order,
    domain: &str,
    challenges: &Challenges,
) -> Result<OrderStatus, ObtainError> {
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization?;
        match authorization.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => {
                let status = format!("{other:?}");
                return Err(ObtainError::Status { what: "the authorization", domain: domain.into(), status });
            }
        }
        let mut challenge =
            authorization.challenge(ChallengeType::TlsAlpn01).ok_or_else(|| ObtainError::NoTlsAlpn(domain.into()))?;
        let proof = challenge::certificate(domain, challenge.key_authorization().digest().as_ref())?;
        challenges.insert(domain, proof);
        challenge.set_ready().await?;
    }
    Ok(order.poll_ready(&RetryPolicy::default()).await?)
}
