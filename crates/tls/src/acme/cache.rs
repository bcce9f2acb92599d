//! The on-disk cache, one directory (SPIRE's bundle endpoint: `<data_dir>/bundle-acme`), private
//! to the server (0700, files 0600), so that a restart reuses the account and certificates instead
//! of ordering again (CAs rate-limit orders): `acme_account.json` holds the account (its URL,
//! directory and key) and `<domain>` the certificate's key and chain in PEM, the name Go's autocert
//! uses. Files are replaced atomically (written beside, then renamed).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The account file's name.
const ACCOUNT: &str = "acme_account.json";

/// Why the cache could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("ACME cache {path}: {source}")]
pub struct CacheError {
    /// The file or directory.
    pub path: PathBuf,
    /// The I/O error.
    pub source: std::io::Error,
}

/// The cache directory.
#[derive(Debug, Clone)]
pub(crate) struct DiskCache {
    dir: PathBuf,
}

impl DiskCache {
    /// Creates the directory (0700) if needed.
    pub(crate) fn open(dir: &Path) -> Result<Self, CacheError> {
        let err = |source| CacheError { path: dir.to_owned(), source };
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(err)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        Ok(Self { dir: dir.to_owned() })
    }

    /// The account credentials (instant-acme's JSON), if cached.
    pub(crate) fn account(&self) -> Result<Option<String>, CacheError> {
        self.read(ACCOUNT)
    }

    pub(crate) fn put_account(&self, json: &str) -> Result<(), CacheError> {
        self.write(ACCOUNT, json)
    }

    /// The PEM key and chain cached for `domain`.
    pub(crate) fn certificate(&self, domain: &str) -> Result<Option<String>, CacheError> {
        self.read(domain)
    }

    pub(crate) fn put_certificate(&self, domain: &str, pem: &str) -> Result<(), CacheError> {
        self.write(domain, pem)
    }

    fn read(&self, name: &str) -> Result<Option<String>, CacheError> {
        let path = self.dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CacheError { path, source }),
        }
    }

    fn write(&self, name: &str, text: &str) -> Result<(), CacheError> {
        let (path, tmp) = (self.dir.join(name), self.dir.join(format!(".{name}.tmp")));
        let err = |source| CacheError { path: path.clone(), source };
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(err)?;
        file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_privately() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("bundle-acme");
        let cache = DiskCache::open(&dir).unwrap();
        assert_eq!(cache.account().unwrap(), None);
        assert_eq!(cache.certificate("example.org").unwrap(), None);
        cache.put_account("{}").unwrap();
        cache.put_certificate("example.org", "pem").unwrap();
        cache.put_certificate("example.org", "pem2").unwrap();
        assert_eq!(cache.account().unwrap().as_deref(), Some("{}"));
        assert_eq!(cache.certificate("example.org").unwrap().as_deref(), Some("pem2"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("example.org")), 0o600);
        assert_eq!(mode(&dir.join(ACCOUNT)), 0o600);
    }
}
