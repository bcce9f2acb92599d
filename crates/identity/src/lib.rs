//! SPIFFE identity core: the standards spire-rs is built on, as a library with no I/O.
//!
//! - [`spiffe_id`]: SPIFFE IDs and trust domains (SPIFFE-ID.md).
//! - [`selector`]: selectors, selector sets and match modes.
//! - [`keys`]: the four key types SPIRE supports, as PKCS#8.
//! - [`signing`]: keys that sign here or in a key manager that never hands them out.
//! - [`x509`]: building CA and leaf certificates, validating X509-SVID chains (X509-SVID.md).
//! - [`jwt`]: signing and validating JWT-SVIDs (JWT-SVID.md).
//! - [`bundle`] and [`jwk`]: trust bundles in SPIFFE, PEM and standard-JWKS form.
//!
//! Time is always passed in, never read, so that callers (and tests) control the clock.

pub mod bundle;
pub mod jwk;
pub mod jwt;
pub mod keys;
pub mod selector;
pub mod signing;
pub mod spiffe_id;
pub mod x509;

pub use bundle::{Bundle, BundleSet, JwtAuthority};
pub use keys::{KeyType, PrivateKey};
pub use selector::{MatchMode, Selector, SelectorSet};
pub use signing::{HashAlgorithm, RemoteSignError, RemoteSigner, SignError, SignerOpts, SigningKey};
pub use spiffe_id::{SpiffeId, TrustDomain};

/// PEM with `\n` line endings, as Go's encoder writes it.
pub(crate) fn pem_encode(tag: &str, der: &[u8]) -> String {
    pem::encode_config(&pem::Pem::new(tag, der.to_vec()), pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF))
}
