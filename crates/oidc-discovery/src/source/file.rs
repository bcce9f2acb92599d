//! `file`: the JWT authorities of a SPIFFE bundle on disk, re-read every poll.

use std::path::{Path, PathBuf};

use spire_identity::jwk::Jwk;
use spire_identity::{Bundle, TrustDomain};

use super::{SourceError, authority_jwk};

/// The bundle file.
#[derive(Debug)]
pub(super) struct FileSource {
    path: PathBuf,
}

impl FileSource {
    pub(super) fn new(path: &Path) -> Self {
        Self { path: path.to_owned() }
    }

    pub(super) async fn fetch(&mut self) -> Result<Vec<Jwk>, SourceError> {
        let bytes = tokio::fs::read(&self.path).await?;
        // The trust domain is not in the file and not used: only the JWT authorities are served.
        let td = TrustDomain::parse("file.invalid").expect("valid trust domain");
        let bundle = Bundle::from_spiffe_json(td, &bytes).map_err(|e| SourceError::Parse(e.to_string()))?;
        Ok(bundle.jwt_authorities().iter().filter_map(|a| authority_jwk(&a.key_id, &a.public_key_der)).collect())
    }
}
