//! KeyManager "memory": keys that die with the process (tests, throwaway deployments).

use std::collections::HashMap;

use spire_identity::{KeyType, PrivateKey, SigningKey};
use tokio::sync::Mutex;

use super::{KeyManager, KeyManagerError};

/// Keys held in memory only.
#[derive(Debug, Default)]
pub struct MemoryKeyManager {
    keys: Mutex<HashMap<String, PrivateKey>>,
}

impl MemoryKeyManager {
    /// An empty key manager.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl KeyManager for MemoryKeyManager {
    async fn generate_key(&self, id: &str, key_type: KeyType) -> Result<SigningKey, KeyManagerError> {
        let key =
            PrivateKey::generate(key_type).map_err(|source| KeyManagerError::Generate { id: id.to_owned(), source })?;
        self.keys.lock().await.insert(id.to_owned(), key.clone());
        Ok(SigningKey::Local(key))
    }

    async fn get_key(&self, id: &str) -> Result<Option<SigningKey>, KeyManagerError> {
        Ok(self.keys.lock().await.get(id).cloned().map(SigningKey::Local))
    }
}
