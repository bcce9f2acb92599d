//! `plugin_checksum`: the SHA-256 the executable must have, checked before it runs.

use std::path::Path;

/// Why the checksum refused the plugin; messages as SPIRE's and go-plugin's.
#[derive(Debug, thiserror::Error)]
pub enum ChecksumError {
    /// Not hex.
    #[error("checksum is not a valid hex string")]
    NotHex,
    /// Hex, but not 32 bytes.
    #[error("expected checksum of length 64; got {0}")]
    Length(usize),
    /// The executable could not be read.
    #[error("error verifying checksum: {0}")]
    Read(#[source] std::io::Error),
    /// The executable is not the one configured.
    #[error("checksums did not match")]
    Mismatch,
}

/// The configured checksum as bytes, checked for form before anything runs.
pub fn parse(hex: &str) -> Result<Vec<u8>, ChecksumError> {
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ChecksumError::NotHex);
    }
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| ChecksumError::NotHex))
        .collect::<Result<_, _>>()?;
    if bytes.len() != 32 {
        return Err(ChecksumError::Length(hex.len()));
    }
    Ok(bytes)
}

/// Whether the file at `path` hashes to `expected` (compared in constant time).
pub async fn verify(path: &Path, expected: &[u8]) -> Result<(), ChecksumError> {
    let path = path.to_owned();
    let digest = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let mut file = std::fs::File::open(&path)?;
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
        }
        Ok(ctx.finish().as_ref().to_vec())
    })
    .await
    .map_err(|e| ChecksumError::Read(std::io::Error::other(e)))?
    .map_err(ChecksumError::Read)?;
    if aws_lc_rs::constant_time::verify_slices_are_equal(&digest, expected).is_err() {
        return Err(ChecksumError::Mismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_is_checked_first() {
        assert!(matches!(parse("zz"), Err(ChecksumError::NotHex)));
        assert!(matches!(parse("abc"), Err(ChecksumError::NotHex)));
        assert_eq!(parse("abcd").unwrap_err().to_string(), "expected checksum of length 64; got 4");
        assert_eq!(parse(&"0".repeat(64)).unwrap().len(), 32);
    }

    #[tokio::test]
    async fn only_the_right_file_passes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plugin");
        std::fs::write(&path, b"abc").unwrap();
        // SHA-256("abc")
        let good = parse("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad").unwrap();
        verify(&path, &good).await.unwrap();
        let mut bad = good.clone();
        bad[0] ^= 1;
        assert_eq!(verify(&path, &bad).await.unwrap_err().to_string(), "checksums did not match");
        assert!(matches!(verify(&dir.path().join("none"), &good).await, Err(ChecksumError::Read(_))));
    }
}
