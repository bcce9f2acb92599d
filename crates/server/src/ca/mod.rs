//! The server's certificate authority: X.509 CA and JWT signing key, their A/B slot rotation, and the
//! signing front used by the APIs.

pub mod journal;
pub mod manager;
pub mod signer;
pub mod slot;

pub use manager::{CaManager, CaManagerConfig, CaManagerError};
pub use signer::{Ca, CaError, SignedJwt, SignedX509};
