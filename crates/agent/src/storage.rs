//! What the agent keeps in its data directory so that a restart resumes without a new join token:
//! its SVID and the trust bundle (`agent-data.json`, SPIRE's file name). The SVID's key lives in the
//! KeyManager.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

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

#[derive(Serialize, Deserialize)]
struct Stored {
    svid: Vec<String>,
    bundle: Vec<String>,
    reattestable: bool,
    #[serde(default)]
    key_id: String,
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
        let decode = |v: Vec<String>| -> Result<Vec<Vec<u8>>, StorageError> {
            v.into_iter().map(|s| STANDARD.decode(s).map_err(|e| self.err(e))).collect()
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
        let enc = |v: &[Vec<u8>]| v.iter().map(|b| STANDARD.encode(b)).collect();
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

    /// Forgets everything (after the agent was banned or evicted).
    pub fn clear(&self) -> Result<(), StorageError> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.err(e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::new(dir.path());
        assert_eq!(s.load().unwrap(), AgentData::default());
        let data = AgentData {
            svid: vec![vec![1, 2]],
            bundle: vec![vec![3]],
            reattestable: true,
            key_id: "agent-svid-A".into(),
        };
        s.save(&data).unwrap();
        assert_eq!(s.load().unwrap(), data);
        s.clear().unwrap();
        assert_eq!(s.load().unwrap(), AgentData::default());
    }
}
