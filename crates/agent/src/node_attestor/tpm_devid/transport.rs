//! The byte channel to a TPM: a character device (`/dev/tpmrm0`, the kernel's resource manager, or
//! `/dev/tpm0`), or, as go-tpm's `OpenTPM` does, a Unix socket speaking raw TPM commands (a software
//! TPM such as `swtpm socket --server type=unixio,path=...`).

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// The largest response a TPM sends (`TPM_MAX_COMMAND_SIZE` on every TPM we know).
const MAX_RESPONSE: usize = 4096;
const HEADER_LEN: usize = 10;

/// An open TPM.
pub struct Transport {
    channel: Channel,
}

enum Channel {
    /// A device answers each write with one read of the whole response.
    Device(std::fs::File),
    /// A socket is a stream: the response is as long as its header says.
    Socket(UnixStream),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.channel {
            Channel::Device(_) => "Transport(device)",
            Channel::Socket(_) => "Transport(socket)",
        })
    }
}

impl Transport {
    /// Opens the TPM at `path`, connecting if it is a socket.
    pub fn open(path: &Path) -> io::Result<Self> {
        let channel = if std::fs::metadata(path)?.file_type().is_socket() {
            Channel::Socket(UnixStream::connect(path)?)
        } else {
            Channel::Device(OpenOptions::new().read(true).write(true).open(path)?)
        };
        Ok(Self { channel })
    }

    /// Sends one command and returns its response.
    pub fn transmit(&mut self, command: &[u8]) -> io::Result<Vec<u8>> {
        match &mut self.channel {
            Channel::Device(file) => {
                file.write_all(command)?;
                let mut buf = vec![0u8; MAX_RESPONSE];
                let n = file.read(&mut buf)?;
                buf.truncate(n);
                Ok(buf)
            }
            Channel::Socket(stream) => {
                stream.write_all(command)?;
                let mut buf = vec![0u8; HEADER_LEN];
                stream.read_exact(&mut buf)?;
                let size = u32::from_be_bytes([buf[2], buf[3], buf[4], buf[5]]) as usize;
                if !(HEADER_LEN..=MAX_RESPONSE).contains(&size) {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, format!("bad response size {size}")));
                }
                buf.resize(size, 0);
                stream.read_exact(&mut buf[HEADER_LEN..])?;
                Ok(buf)
            }
        }
    }
}

/// SPIRE's `AutoDetectTPMPath`: the one `tpmrmN` in `dir`, else the one `tpmN`.
pub fn autodetect(dir: &Path) -> Result<PathBuf, String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("open {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    for prefix in ["tpmrm", "tpm"] {
        let found: Vec<&String> = names.iter().filter(|n| matches_device(n, prefix)).collect();
        match found.as_slice() {
            [] => continue,
            [one] => return Ok(dir.join(one)),
            _ => return Err("more than one possible TPM device was found".into()),
        }
    }
    Err("not found".into())
}

/// Whether `name` ends with `<prefix><digits>` (SPIRE's unanchored-at-start regexps).
fn matches_device(name: &str, prefix: &str) -> bool {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    digits > 0 && name[..name.len() - digits].ends_with(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autodetects_as_spire() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(autodetect(dir.path()).unwrap_err(), "not found");
        std::fs::write(dir.path().join("tpm0"), b"").unwrap();
        assert_eq!(autodetect(dir.path()).unwrap(), dir.path().join("tpm0"));
        std::fs::write(dir.path().join("tpmrm0"), b"").unwrap();
        assert_eq!(autodetect(dir.path()).unwrap(), dir.path().join("tpmrm0"));
        std::fs::write(dir.path().join("tpmrm1"), b"").unwrap();
        assert_eq!(autodetect(dir.path()).unwrap_err(), "more than one possible TPM device was found");
        assert!(!matches_device("tpm", "tpm"));
        assert!(!matches_device("tpmrm0x", "tpmrm"));
    }
}
