//! Certificates from an ACME CA (RFC 8555) for servers that take SPIRE's `acme` settings: the
//! bundle endpoint's `https_web` profile and the OIDC discovery provider. Like Go's autocert, which
//! SPIRE uses, the certificate is proven with tls-alpn-01 (RFC 8737) on the serving port itself, so
//! no other port has to be reachable, and account and certificates are cached on disk.
//!
//! Use:
//! ```ignore
//! let acme = spire_tls::acme::start(AcmeConfig { directory_url, domains, email, cache_dir, tos_accepted })?;
//! let mut tls = rustls::ServerConfig::builder_with_provider(provider())
//!     .with_safe_default_protocol_versions()?
//!     .with_no_client_auth()
//!     .with_cert_resolver(acme.resolver.clone());
//! tls.alpn_protocols = vec![b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
//! // after each handshake: if is_challenge(conn) { close it }: the CA only looks at the certificate
//! ```
//! `start` must run inside a tokio runtime; abort `acme.task` at shutdown.
//!
//! What it does: at start the cached certificates are loaded (so a restart serves at once), then a
//! task obtains each missing or due certificate (one per domain, as autocert), renews it a third of
//! its lifetime (at most 30 days) before expiry, and retries failures with a growing delay. Until a
//! domain has a certificate, handshakes for it fail. The ACME directory's TLS is checked against
//! the system roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` replace them).

mod cache;
mod challenge;
mod http;
mod issued;
mod order;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

pub use cache::CacheError;
pub use challenge::{ACME_TLS_ALPN, ChallengeError};
pub use http::HttpError;
pub use issued::{Issued, IssuedError};
pub use order::ObtainError;

use cache::DiskCache;
use challenge::Challenges;
use order::AccountSettings;

/// Let's Encrypt's production directory, SPIRE's default `directory_url`.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The first retry delay after a failure; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(10);
/// The longest retry delay, and the longest sleep between checks.
const MAX_RETRY: Duration = Duration::from_secs(3600);

/// What to obtain certificates for, and where from.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The ACME directory URL (SPIRE's default: [`LETS_ENCRYPT_DIRECTORY`]).
    pub directory_url: String,
    /// The domains served, one certificate each; a handshake without SNI gets the first's.
    pub domains: Vec<String>,
    /// The account's contact e-mail.
    pub email: String,
    /// The cache directory (created 0700).
    pub cache_dir: PathBuf,
    /// Whether the CA's terms of service are accepted; a CA that requires it refuses the account.
    pub tos_accepted: bool,
}

/// Why the manager could not start.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// A domain is not a DNS name (it is also a cache file name).
    #[error("ACME: invalid domain name {0:?}")]
    Domain(String),
    /// The cache directory is unusable.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// A started manager: the resolver to serve with and the task obtaining and renewing.
#[derive(Debug)]
pub struct Started {
    /// The certificate resolver (tls-alpn-01 challenges included).
    pub resolver: Arc<AcmeResolver>,
    /// Obtains and renews until aborted.
    pub task: tokio::task::JoinHandle<()>,
}

/// Loads the cache and spawns the task obtaining and renewing the certificates.
pub fn start(config: AcmeConfig) -> Result<Started, AcmeError> {
    let domains: Vec<String> = config.domains.iter().map(|d| d.to_ascii_lowercase()).collect();
    if let Some(bad) = domains.iter().find(|d| !valid_domain(d)) {
        return Err(AcmeError::Domain(bad.clone()));
    }
    if !config.tos_accepted {
        tracing::warn!("{}", order::TOS_NOT_ACCEPTED);
    }
    let cache = DiskCache::open(&config.cache_dir)?;
    let http = http::client()?;
    let resolver = Arc::new(AcmeResolver { domains, certs: RwLock::default(), challenges: Challenges::default() });
    let mut renew_at = HashMap::new();
    for domain in &resolver.domains {
        renew_at.insert(domain.clone(), SystemTime::UNIX_EPOCH);
        match cache.certificate(domain).map(|pem| pem.map(|p| Issued::parse(domain, p.as_bytes(), SystemTime::now()))) {
            Ok(Some(Ok(issued))) => {
                tracing::info!(domain, "using the cached ACME certificate");
                renew_at.insert(domain.clone(), issued.renew_at());
                resolver.set(domain, issued.certified);
            }
            Ok(Some(Err(e))) => tracing::info!(domain, reason = %e, "the cached ACME certificate is not used"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the ACME cache"),
        }
    }
    let settings =
        AccountSettings { directory_url: config.directory_url, email: config.email, tos_accepted: config.tos_accepted };
    let manager = Manager { settings, cache, http, resolver: resolver.clone(), renew_at };
    Ok(Started { resolver, task: tokio::spawn(manager.run()) })
}

/// Whether the handshake on `conn` was a tls-alpn-01 validation (close it: it carries no request).
pub fn is_challenge<D>(conn: &rustls::ConnectionCommon<D>) -> bool {
    conn.alpn_protocol() == Some(ACME_TLS_ALPN)
}

/// Whether `domain` is a DNS name (letters, digits, hyphens and dots, no empty label), which it
/// must be to be ordered and to name its cache file.
pub fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// Serves each domain's certificate, and the challenge certificates to the CA's validation.
#[derive(Debug)]
pub struct AcmeResolver {
    domains: Vec<String>,
    certs: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    challenges: Challenges,
}

impl AcmeResolver {
    /// The certificate currently served for `domain`, if any.
    pub fn certificate(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        self.certs.read().expect("certs lock").get(domain).cloned()
    }

    fn set(&self, domain: &str, cert: Arc<CertifiedKey>) {
        self.certs.write().expect("certs lock").insert(domain.to_owned(), cert);
    }
}

impl ResolvesServerCert for AcmeResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().map(|n| n.trim_end_matches('.').to_ascii_lowercase());
        // RFC 8737: a validation offers `acme-tls/1` alone (Go's autocert checks the same); a client
        // listing it among others is an ordinary client and gets the domain's certificate.
        if hello.alpn().is_some_and(|offered| offered.eq([ACME_TLS_ALPN])) {
            return self.challenges.get(name.as_deref()?);
        }
        let domain = match name {
            Some(name) => self.domains.iter().find(|d| **d == name)?,
            None => self.domains.first()?,
        };
        self.certificate(domain)
    }
}

/// The task's state.
struct Manager {
    settings: AccountSettings,
    cache: DiskCache,
    http: http::AcmeHttp,
    resolver: Arc<AcmeResolver>,
    /// When each domain is due (the epoch: now).
    renew_at: HashMap<String, SystemTime>,
}

impl Manager {
    async fn run(mut self) {
        let mut account = None;
        let mut retry = FIRST_RETRY;
        loop {
            let now = SystemTime::now();
            let due: Vec<String> = self.renew_at.iter().filter(|(_, at)| **at <= now).map(|(d, _)| d.clone()).collect();
            let mut failed = false;
            for domain in due {
                match self.renew(&mut account, &domain).await {
                    Ok(issued) => {
                        let expires = time_of(issued.not_after);
                        tracing::info!(
                            domain,
                            expires,
                            directory_url = self.settings.directory_url,
                            "obtained an ACME certificate"
                        );
                        self.renew_at.insert(domain.clone(), issued.renew_at());
                        self.resolver.set(&domain, issued.certified);
                    }
                    Err(e) => {
                        tracing::error!(domain, error = %e, "failed to obtain an ACME certificate");
                        failed = true;
                    }
                }
            }
            let wait = if failed {
                let wait = retry;
                retry = (retry * 2).min(MAX_RETRY);
                wait
            } else {
                retry = FIRST_RETRY;
                let next = self.renew_at.values().min().copied().unwrap_or(now + MAX_RETRY);
                next.duration_since(SystemTime::now()).unwrap_or_default().min(MAX_RETRY)
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Obtains `domain`'s certificate and caches it; the account is made once and kept.
    async fn renew(&self, account: &mut Option<instant_acme::Account>, domain: &str) -> Result<Issued, ObtainError> {
        let current = match account {
            Some(current) => current,
            None => account.insert(order::account(&self.settings, &self.cache, &self.http).await?),
        };
        let (issued, pem) = order::obtain(current, domain, &self.resolver.challenges).await?;
        if let Err(e) = self.cache.put_certificate(domain, &pem) {
            tracing::warn!(error = %e, "cannot cache the ACME certificate");
        }
        Ok(issued)
    }
}

/// RFC 3339-ish seconds since the epoch, for the log.
fn time_of(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ServerCertCheck, server_verifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    /// Accepts any server certificate: these tests look at which one is presented.
    #[derive(Debug)]
    struct Any;

    impl ServerCertCheck for Any {
        fn check(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: UnixTime,
        ) -> Result<(), rustls::Error> {
            Ok(())
        }
    }

    fn self_signed(domain: &str) -> Arc<CertifiedKey> {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![domain.to_owned()]).unwrap().self_signed(&key).unwrap();
        let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let signing = crate::provider().key_provider.load_private_key(der).unwrap();
        Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing))
    }

    /// An in-memory handshake with `resolver` as `name` (an IP address sends no SNI) offering
    /// `alpn`: the certificate presented.
    fn presented(
        resolver: Arc<AcmeResolver>,
        name: &str,
        alpn: &[&[u8]],
    ) -> Result<CertificateDer<'static>, rustls::Error> {
        let mut server_config = rustls::ServerConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        server_config.alpn_protocols = vec![b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
        let mut client_config = rustls::ClientConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(server_verifier(Any))
            .with_no_client_auth();
        client_config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(client_config), name)?;
        let mut server = rustls::ServerConnection::new(Arc::new(server_config))?;
        while client.is_handshaking() || server.is_handshaking() {
            let mut buf = Vec::new();
            client.write_tls(&mut buf).unwrap();
            server.read_tls(&mut buf.as_slice()).unwrap();
            let server_state = server.process_new_packets();
            buf.clear();
            server.write_tls(&mut buf).unwrap();
            client.read_tls(&mut buf.as_slice()).unwrap();
            server_state?;
            client.process_new_packets()?;
        }
        Ok(client.peer_certificates().unwrap()[0].clone())
    }

    #[test]
    fn presents_the_domain_certificate_or_the_challenge_by_alpn() {
        let resolver = Arc::new(AcmeResolver {
            domains: vec!["a.example".into(), "b.example".into()],
            certs: RwLock::default(),
            challenges: Challenges::default(),
        });
        // Nothing obtained yet: the handshake fails.
        assert!(presented(resolver.clone(), "a.example", &[b"http/1.1"]).is_err());
        let (a, b, proof) = (self_signed("a.example"), self_signed("b.example"), self_signed("a.example"));
        resolver.set("a.example", a.clone());
        resolver.set("b.example", b.clone());
        resolver.challenges.insert("a.example", proof.clone());
        assert_eq!(presented(resolver.clone(), "a.example", &[b"http/1.1"]).unwrap(), a.cert[0]);
        assert_eq!(presented(resolver.clone(), "B.example", &[b"http/1.1"]).unwrap(), b.cert[0]);
        // No SNI: the first domain's; another name: none, as autocert's host policy.
        assert_eq!(presented(resolver.clone(), "127.0.0.1", &[b"http/1.1"]).unwrap(), a.cert[0]);
        assert!(presented(resolver.clone(), "c.example", &[b"http/1.1"]).is_err());
        // tls-alpn-01: the challenge certificate, only for a domain being validated.
        assert_eq!(presented(resolver.clone(), "a.example", &[ACME_TLS_ALPN]).unwrap(), proof.cert[0]);
        assert!(presented(resolver.clone(), "b.example", &[ACME_TLS_ALPN]).is_err());
        // Offered among other protocols it is no validation: the domain's certificate.
        assert_eq!(presented(resolver, "a.example", &[b"http/1.1", ACME_TLS_ALPN]).unwrap(), a.cert[0]);
    }

    #[test]
    fn domains_are_dns_names() {
        assert!(valid_domain("localhost") && valid_domain("bundle.example-1.org"));
        for bad in ["", "../x", "a..b", ".a", "a/b", "a b", "*.example.org"] {
            assert!(!valid_domain(bad), "{bad}");
        }
    }
}
