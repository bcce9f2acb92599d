//! KeyManager plugins: where private keys live (the server's CA and JWT keys, the agent's SVID key).
//!
//! SPIRE asks a key manager for keys by ID (`x509-CA-A`, `JWT-Signer-B`...). The built-in "disk" and
//! "memory" managers hold the key material locally and hand it out; an external KeyManager plugin
//! keeps it and signs on request. The trait answers a [`SigningKey`] that is one or the other: the
//! server's CA and JWT signing work with both, while whoever must hand key material out (the agent's
//! SVID keys) asks for a local key with [`KeyManager::get_local_key`] and
//! [`KeyManager::generate_local_key`].

mod disk;
mod memory;

pub use disk::DiskKeyManager;
pub use memory::MemoryKeyManager;

use spire_identity::keys::KeyError;
use spire_identity::{KeyType, PrivateKey, SigningKey};

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
    /// An external KeyManager plugin failed (its message carries SPIRE's `keymanager(<name>): `).
    #[error("{reason}")]
    Plugin {
        /// The plugin's name.
        name: String,
        /// What it said.
        reason: String,
    },
    /// The key stays in the key manager, but its material is needed here.
    #[error("key {id:?}: {source}")]
    NotLocal {
        /// The key ID.
        id: String,
        /// [`KeyError::NotExportable`].
        source: KeyError,
    },
}

/// A store of named keys, local or held by a plugin that signs with them.
#[async_trait::async_trait]
pub trait KeyManager: Send + Sync + std::fmt::Debug {
    /// Generates (or replaces) the key `id` and persists it before returning.
    async fn generate_key(&self, id: &str, key_type: KeyType) -> Result<SigningKey, KeyManagerError>;

    /// The key `id`, if it exists.
    async fn get_key(&self, id: &str) -> Result<Option<SigningKey>, KeyManagerError>;

    /// [`Self::generate_key`] for a caller that needs the key material; a key manager that keeps its
    /// keys answers [`KeyManagerError::NotLocal`].
    async fn generate_local_key(&self, id: &str, key_type: KeyType) -> Result<PrivateKey, KeyManagerError> {
        local(id, self.generate_key(id, key_type).await?)
    }

    /// [`Self::get_key`] for a caller that needs the key material; a key manager that keeps its keys
    /// answers [`KeyManagerError::NotLocal`].
    async fn get_local_key(&self, id: &str) -> Result<Option<PrivateKey>, KeyManagerError> {
        self.get_key(id).await?.map(|key| local(id, key)).transpose()
    }
}

fn local(id: &str, key: SigningKey) -> Result<PrivateKey, KeyManagerError> {
    key.into_local().map_err(|source| KeyManagerError::NotLocal { id: id.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A key manager that keeps its keys and only signs, as an external plugin does (here with
    /// a real key behind the signer).
    #[derive(Debug)]
    struct Keeping;

    #[async_trait::async_trait]
    impl KeyManager for Keeping {
        async fn generate_key(&self, id: &str, key_type: KeyType) -> Result<SigningKey, KeyManagerError> {
            let key = PrivateKey::generate(key_type)
                .map_err(|source| KeyManagerError::Generate { id: id.to_owned(), source })?;
            Ok(SigningKey::remote(key_type, key.public_key_der(), Arc::new(key)).expect("own public key"))
        }

        async fn get_key(&self, id: &str) -> Result<Option<SigningKey>, KeyManagerError> {
            self.generate_key(id, KeyType::EcP256).await.map(Some)
        }
    }

    #[tokio::test]
    async fn local_keys_only_from_managers_that_hand_them_out() {
        let memory = MemoryKeyManager::new();
        let key = memory.generate_local_key("agent-svid-A", KeyType::EcP256).await.unwrap();
        assert_eq!(memory.get_local_key("agent-svid-A").await.unwrap(), Some(key));
        assert_eq!(memory.get_local_key("agent-svid-B").await.unwrap(), None);

        let err = Keeping.generate_local_key("agent-svid-A", KeyType::EcP256).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "key \"agent-svid-A\": the ec-p256 key is held by the key manager and cannot be exported: a local key \
             is needed here"
        );
        assert!(matches!(Keeping.get_local_key("x").await, Err(KeyManagerError::NotLocal { .. })));
    }
}
