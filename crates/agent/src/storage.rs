//! What the agent keeps in its data directory so that a restart resumes without a new join token:
//! its SVID and the trust bundle, in SPIRE's `agent-data.json` (each certificate PEM-encoded, as Go
//! marshals `[][]byte`: base64), so that either implementation's agent resumes from a directory the
//! other wrote. The SVID's key lives in the KeyManager (`agent-svid-A` or `-B`); SPIRE finds it by
//! its public key, and so do we when the file does not name it.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use spire_identity::x509::{certs_from_pem, certs_to_pem};
use spire_keymanager::KeyManager;

/// The KeyManager slots of the agent SVID's key (SPIRE's names).
pub const KEY_SLOTS: [&str; 2] = ["agent-svid-A", "agent-svid-B"];

/// The file name inside `data_dir`.
pub const FILE_NAME: &str = "agent-data.json";

/// Why the data could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("agent data {path}: {reason}")]
pub struct StorageError {
    path: String,
    reason: String,
}

/// The persisted state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentData {
    /// The agent's SVID chain, leaf first; empty before attestation.
    pub svid: Vec<Vec<u8>>,
    /// The trust bundle's X.509 authorities.
    pub bundle: Vec<Vec<u8>>,
    /// Whether the agent re-attests instead of renewing.
    pub reattestable: bool,
    /// The KeyManager ID of the SVID's key (`agent-svid-A` or `-B`: a renewal writes the other slot
    /// first, so a crash never leaves an SVID without its key).
    pub key_id: String,
}

/// The file's JSON. SPIRE writes `null` for an empty list, and fields of its own (bootstrap
/// bookkeeping) that are ignored here; `key_id` is ours, and SPIRE ignores it.
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(default)]
    svid: Option<Vec<String>>,
    #[serde(default)]
    bundle: Option<Vec<String>>,
    #[serde(default)]
    reattestable: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    key_id: String,
}

/// A stored certificate: base64 of its PEM (SPIRE's form) or, as spire-rs wrote before, of its DER.
fn decode_cert(b64: &str) -> Result<Vec<u8>, String> {
    let bytes = STANDARD.decode(b64).map_err(|e| e.to_string())?;
    if !bytes.starts_with(b"-----BEGIN") {
        return Ok(bytes);
    }
    let text = String::from_utf8(bytes).map_err(|e| e.to_string())?;
    certs_from_pem(&text).map_err(|e| e.to_string())?.into_iter().next().ok_or_else(|| "empty PEM".to_owned())
}

/// `agent-data.json` in a data directory.
#[derive(Debug, Clone)]
pub struct Storage {
    path: PathBuf,
}

impl Storage {
    /// The storage of `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self { path: data_dir.join(FILE_NAME) }
    }

    fn err(&self, reason: impl ToString) -> StorageError {
        StorageError { path: self.path.display().to_string(), reason: reason.to_string() }
    }

    /// Loads the data; a missing file is empty data.
    pub fn load(&self) -> Result<AgentData, StorageError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AgentData::default()),
            Err(e) => return Err(self.err(e)),
        };
        let stored: Stored = serde_json::from_slice(&bytes).map_err(|e| self.err(e))?;
        let decode = |v: Option<Vec<String>>| -> Result<Vec<Vec<u8>>, StorageError> {
            v.unwrap_or_default().iter().map(|s| decode_cert(s).map_err(|e| self.err(e))).collect()
        };
        Ok(AgentData {
            svid: decode(stored.svid)?,
            bundle: decode(stored.bundle)?,
            reattestable: stored.reattestable,
            key_id: stored.key_id,
        })
    }

    /// Saves the data atomically (temporary file and rename), readable by the owner only.
    pub fn save(&self, data: &AgentData) -> Result<(), StorageError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let enc = |v: &[Vec<u8>]| Some(v.iter().map(|der| STANDARD.encode(certs_to_pem(&[der]))).collect());
        let stored = Stored {
            svid: enc(&data.svid),
            bundle: enc(&data.bundle),
            reattestable: data.reattestable,
            key_id: data.key_id.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&stored).map_err(|e| self.err(e))?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.err(e))?;
        }
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| self.err(e))?;
        f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(|e| self.err(e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.err(e))
    }

    /// Forgets the SVID (after the agent was banned or evicted) and keeps the bundle, as SPIRE's
    /// `DeleteSVID` does: attesting again with a new token trusts the server the agent last knew.
    pub fn clear(&self) -> Result<(), StorageError> {
        if !self.path.exists() {
            return Ok(());
        }
        let data = self.load()?;
        self.save(&AgentData { bundle: data.bundle, ..AgentData::default() })
    }

    /// Names the SVID's key when the file does not (SPIRE's agent wrote it): the KeyManager slot
    /// whose public key is the SVID's, as SPIRE's agent finds it. Leaves the file alone otherwise.
    pub async fn adopt_svid_key(&self, keys: &dyn KeyManager) -> Result<(), StorageError> {
        let mut data = self.load()?;
        if data.svid.is_empty() || !data.key_id.is_empty() {
            return Ok(());
        }
        let Some(spki) = leaf_public_key(&data.svid) else { return Ok(()) };
        for slot in KEY_SLOTS {
            let key = keys.get_key(slot).await.map_err(|e| self.err(e))?;
            if key.is_some_and(|k| k.public_key_der() == spki) {
                data.key_id = slot.to_owned();
                return self.save(&data);
            }
        }
        Ok(())
    }
}

/// The SubjectPublicKeyInfo DER of the chain's leaf.
fn leaf_public_key(chain: &[Vec<u8>]) -> Option<Vec<u8>> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(chain.first()?).ok()?;
    Some(cert.public_key().raw.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use spire_identity::KeyType;
    use spire_keymanager::DiskKeyManager;
    use spire_testkit::pki::Pki;

    fn svid() -> (Vec<Vec<u8>>, spire_identity::PrivateKey, Vec<u8>) {
        let pki = Pki::new(KeyType::EcP256);
        let (chain, key) = pki.leaf("spiffe://example.org/spire/agent/join_token/t", &[]);
        (chain, key, pki.bundle().x509_authorities()[0].clone())
    }

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::new(dir.path());
        assert_eq!(s.load().unwrap(), AgentData::default());
        let (chain, _, root) = svid();
        let data =
            AgentData { svid: chain, bundle: vec![root.clone()], reattestable: true, key_id: "agent-svid-A".into() };
        s.save(&data).unwrap();
        assert_eq!(s.load().unwrap(), data);

        // Written as SPIRE writes it: base64 of each certificate's PEM.
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(FILE_NAME)).unwrap()).unwrap();
        let pem = STANDARD.decode(json["bundle"][0].as_str().unwrap()).unwrap();
        assert_eq!(String::from_utf8(pem).unwrap(), certs_to_pem(&[&root]));

        // Banned or evicted: the SVID goes, the bundle stays (SPIRE's DeleteSVID).
        s.clear().unwrap();
        assert_eq!(s.load().unwrap(), AgentData { bundle: vec![root], ..AgentData::default() });
    }

    #[test]
    fn reads_spire_agents_file_and_our_older_der_form() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::new(dir.path());
        let (chain, _, root) = svid();
        let pem = |der: &[u8]| STANDARD.encode(certs_to_pem(&[der]));
        let spire = serde_json::json!({
            "svid": chain.iter().map(|c| pem(c)).collect::<Vec<_>>(),
            "bundle": [pem(&root)],
            "reattestable": false,
            "bootstrap_use": 0,
            "bootstrap_start_time": "0001-01-01T00:00:00Z",
            "connection_attempts": 0
        });
        std::fs::write(dir.path().join(FILE_NAME), spire.to_string()).unwrap();
        let data = s.load().unwrap();
        assert_eq!((data.svid, data.bundle, data.key_id), (chain.clone(), vec![root.clone()], String::new()));

        // SPIRE's file after DeleteSVID.
        let deleted = serde_json::json!({ "svid": null, "bundle": [pem(&root)], "reattestable": false });
        std::fs::write(dir.path().join(FILE_NAME), deleted.to_string()).unwrap();
        assert_eq!(s.load().unwrap(), AgentData { bundle: vec![root.clone()], ..AgentData::default() });

        let older = serde_json::json!({
            "svid": chain.iter().map(|c| STANDARD.encode(c)).collect::<Vec<_>>(),
            "bundle": [STANDARD.encode(&root)],
            "reattestable": false,
            "key_id": "agent-svid-B"
        });
        std::fs::write(dir.path().join(FILE_NAME), older.to_string()).unwrap();
        let data = s.load().unwrap();
        assert_eq!((data.svid, data.bundle, data.key_id.as_str()), (chain, vec![root], "agent-svid-B"));
    }

    #[tokio::test]
    async fn the_svid_key_is_found_by_its_public_key_when_the_file_names_none() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::new(dir.path());
        let (chain, key, root) = svid();
        // keys.json as SPIRE's disk KeyManager writes it: the SVID's key in slot B.
        let other = spire_identity::PrivateKey::generate(KeyType::EcP256).unwrap();
        let keys = serde_json::json!({ "keys": {
            "agent-svid-A": STANDARD.encode(other.pkcs8_der()),
            "agent-svid-B": STANDARD.encode(key.pkcs8_der()),
        }});
        std::fs::write(dir.path().join("keys.json"), keys.to_string()).unwrap();
        let km = DiskKeyManager::open(dir.path().join("keys.json")).unwrap();

        s.save(&AgentData { svid: chain.clone(), bundle: vec![root], ..AgentData::default() }).unwrap();
        s.adopt_svid_key(&km).await.unwrap();
        assert_eq!(s.load().unwrap().key_id, "agent-svid-B");

        // A named key is left alone; no SVID, nothing to find.
        s.save(&AgentData { svid: chain, key_id: "agent-svid-A".into(), ..AgentData::default() }).unwrap();
        s.adopt_svid_key(&km).await.unwrap();
        assert_eq!(s.load().unwrap().key_id, "agent-svid-A");
        s.clear().unwrap();
        s.adopt_svid_key(&km).await.unwrap();
        assert_eq!(s.load().unwrap().key_id, "");
    }
}
