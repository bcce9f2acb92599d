//! KeyManager "disk": keys in one JSON file (`keys_path`), so that the CA survives a restart.
//!
//! The file is rewritten whole through a temporary file and a rename, with mode 0600, so a crash
//! never leaves a half-written key file behind.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use spire_identity::{KeyType, PrivateKey, SigningKey};
use tokio::sync::Mutex;

use super::{KeyManager, KeyManagerError};

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeyFile {
    /// Key ID to base64 PKCS#8 DER.
    keys: BTreeMap<String, String>,
}

/// Keys persisted in a JSON file.
#[derive(Debug)]
pub struct DiskKeyManager {
    path: PathBuf,
    keys: Mutex<BTreeMap<String, PrivateKey>>,
}

impl DiskKeyManager {
    /// Opens `path`, loading the keys it holds; a missing file is an empty key set.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, KeyManagerError> {
        let path = path.into();
        let mut keys = BTreeMap::new();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| storage(&path, e))?;
                for (id, b64) in file.keys {
                    let der = STANDARD.decode(b64).map_err(|e| storage(&path, format!("key {id:?}: {e}")))?;
                    let key =
                        PrivateKey::from_pkcs8_der(&der).map_err(|e| storage(&path, format!("key {id:?}: {e}")))?;
                    keys.insert(id, key);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(storage(&path, e)),
        }
        Ok(Self { path, keys: Mutex::new(keys) })
    }

    fn persist(&self, keys: &BTreeMap<String, PrivateKey>) -> Result<(), KeyManagerError> {
        let file = KeyFile { keys: keys.iter().map(|(id, k)| (id.clone(), STANDARD.encode(k.pkcs8_der()))).collect() };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| storage(&self.path, e))?;
        write_private_atomically(&self.path, &bytes).map_err(|e| storage(&self.path, e))
    }
}

fn storage(path: &Path, reason: impl ToString) -> KeyManagerError {
    KeyManagerError::Storage { path: path.display().to_string(), reason: reason.to_string() }
}

/// Writes `bytes` to `path` readable by the owner only, via a temporary file and a rename.
fn write_private_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[async_trait::async_trait]
impl KeyManager for DiskKeyManager {
    async fn generate_key(&self, id: &str, key_type: KeyType) -> Result<SigningKey, KeyManagerError> {
        let key =
            PrivateKey::generate(key_type).map_err(|source| KeyManagerError::Generate { id: id.to_owned(), source })?;
        let mut keys = self.keys.lock().await;
        let mut next = keys.clone();
        next.insert(id.to_owned(), key.clone());
        self.persist(&next)?;
        *keys = next;
        Ok(SigningKey::Local(key))
    }

    async fn get_key(&self, id: &str) -> Result<Option<SigningKey>, KeyManagerError> {
        Ok(self.keys.lock().await.get(id).cloned().map(SigningKey::Local))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_survive_reopen_and_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let km = DiskKeyManager::open(&path).unwrap();
        assert!(km.get_key("x509-CA-A").await.unwrap().is_none());
        let a = km.generate_key("x509-CA-A", KeyType::EcP256).await.unwrap();
        let b = km.generate_key("JWT-Signer-A", KeyType::Rsa2048).await.unwrap();
        drop(km);
        let km = DiskKeyManager::open(&path).unwrap();
        assert_eq!(km.get_key("x509-CA-A").await.unwrap(), Some(a));
        assert_eq!(km.get_key("JWT-Signer-A").await.unwrap(), Some(b));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[tokio::test]
    async fn corrupt_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        std::fs::write(&path, b"{\"keys\": {\"x\": \"bm90IGEga2V5\"}}").unwrap();
        let err = DiskKeyManager::open(&path).unwrap_err().to_string();
        assert!(err.contains("keys.json") && err.contains("\"x\""), "{err}");
    }
}
