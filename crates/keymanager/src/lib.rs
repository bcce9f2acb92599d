//! KeyManager plugins: where private keys live (the server's CA and JWT keys, the agent's SVID key).
//!
//! SPIRE asks a key manager for keys by ID (`x509-CA-A`, `JWT-Signer-B`...). Only the built-in "disk"
//! and "memory" managers exist here, and both hold the key material locally, so the trait hands the
//! key out rather than signing remotely.

mod disk;
mod memory;

pub use disk::DiskKeyManager;
pub use memory::MemoryKeyManager;

use spire_identity::keys::KeyError;
use spire_identity::{KeyType, PrivateKey};

/// Why a key manager failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyManagerError {
    /// The key could not be generated.
    #[error("failed to generate key {id:?}: {source}")]
    Generate {
        /// The key ID.
        id: String,
        /// Why.
        source: KeyError,
    },
    /// The key file could not be read or written.
    #[error("key file {path}: {reason}")]
    Storage {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// A store of named private keys.
#[async_trait::async_trait]
pub trait KeyManager: Send + Sync + std::fmt::Debug {
    /// Generates (or replaces) the key `id` and persists it before returning.
    async fn generate_key(&self, id: &str, key_type: KeyType) -> Result<PrivateKey, KeyManagerError>;

    /// The key `id`, if it exists.
    async fn get_key(&self, id: &str) -> Result<Option<PrivateKey>, KeyManagerError>;
}
