//! The rustls certificate verifiers of the server, the agent and their tests, written once.
//!
//! rustls makes every `ServerCertVerifier` and `ClientCertVerifier` restate the handshake signature
//! checks (`verify_tls12_signature`, `verify_tls13_signature`, `supported_verify_schemes`) next to
//! the certificate check it actually customises. Here a check states only what it accepts
//! ([`ServerCertCheck`], [`ClientCertCheck`]) and [`server_verifier`] / [`client_verifier`] add the
//! signature checks, so they are identical everywhere and always those of aws-lc-rs, the one crypto
//! provider in the tree ([`provider`]).
//!
//! With the `acme` feature, [`acme`] obtains and renews serving certificates from an ACME CA; with
//! `file-cert`, [`file_cert`] serves a certificate from files it re-reads.

#[cfg(feature = "acme")]
pub mod acme;
#[cfg(feature = "file-cert")]
pub mod file_cert;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use spire_identity::BundleSet;
use spire_identity::x509::{VerifiedSvid, X509SvidError, verify_svid};

/// The crypto provider: aws-lc-rs, the one provider in the tree.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The signature algorithms of [`provider`], for checks that verify a chain themselves.
pub fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms
}

/// What a client accepts of a server's certificate (the handshake signature is checked apart).
pub trait ServerCertCheck: Debug + Send + Sync {
    /// Accepts or rejects the server's `end_entity` certificate and its `intermediates`.
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error>;
}

/// What a server accepts of a client's certificate (the handshake signature is checked apart).
pub trait ClientCertCheck: Debug + Send + Sync {
    /// Accepts or rejects the client's `end_entity` certificate and its `intermediates`.
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error>;

    /// Whether a client must present a certificate; by default it may present none.
    fn mandatory(&self) -> bool {
        false
    }
}

/// Validates the X509-SVID chain a TLS peer presented (as rustls hands it to a check) against
/// `bundles`, at the handshake's `now`.
pub fn verify_peer_svid(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    bundles: &BundleSet,
    now: UnixTime,
) -> Result<VerifiedSvid, X509SvidError> {
    let mut chain: Vec<&[u8]> = vec![end_entity.as_ref()];
    chain.extend(intermediates.iter().map(|c| c.as_ref()));
    verify_svid(&chain, bundles, SystemTime::UNIX_EPOCH + Duration::from_secs(now.as_secs()))
}

/// A rustls verifier running `check` on the server's certificate.
pub fn server_verifier(check: impl ServerCertCheck + 'static) -> Arc<dyn ServerCertVerifier> {
    Arc::new(Verifier { check, algorithms: algorithms() })
}

/// A rustls verifier running `check` on the client's certificate, which is asked for (with no
/// root hints) and required only if the check says so.
pub fn client_verifier(check: impl ClientCertCheck + 'static) -> Arc<dyn ClientCertVerifier> {
    Arc::new(Verifier { check, algorithms: algorithms() })
}

/// A check and the signature algorithms every verifier delegates to.
#[derive(Debug)]
struct Verifier<C> {
    check: C,
    algorithms: WebPkiSupportedAlgorithms,
}

/// The handshake signature checks, the same in both verifier traits: those of [`algorithms`].
macro_rules! signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}

impl<C: ServerCertCheck> ServerCertVerifier for Verifier<C> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check.check(end_entity, intermediates, server_name, now)?;
        Ok(ServerCertVerified::assertion())
    }

    signature_checks!();
}

impl<C: ClientCertCheck> ClientCertVerifier for Verifier<C> {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.check.mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check.check(end_entity, intermediates, now)?;
        Ok(ClientCertVerified::assertion())
    }

    signature_checks!();
}
