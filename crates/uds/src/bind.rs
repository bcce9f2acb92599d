//! Creating a listening Unix socket that has its final permissions from the moment its path exists.
//!
//! `bind` creates the socket file with the process umask's mode; a `chmod` afterwards leaves a window
//! in which a more open (or more closed) socket is reachable at the configured path, and the umask is
//! per process, so changing it would race with every other thread. Instead the socket is bound inside
//! a fresh directory only we can enter, given its mode there, and renamed into place: the rename is
//! atomic and also replaces a stale socket left by an earlier run.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// `sun_path` holds 108 bytes including the terminating NUL.
const SUN_PATH_MAX: usize = 107;

/// Why a socket could not be created.
#[derive(Debug, thiserror::Error)]
#[error("failed to listen on {}: {step}: {source}", path.display())]
pub struct BindError {
    /// The socket path asked for.
    pub path: PathBuf,
    /// What was being done.
    pub step: &'static str,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// Binds a listening socket at `path` whose file mode is `mode` from the start (e.g. `0o777` for the
/// Workload API, `0o770` for the admin sockets, as SPIRE). The parent directory is created if
/// missing; a file already at `path` is replaced.
pub fn bind(path: &Path, mode: u32) -> Result<tokio::net::UnixListener, BindError> {
    let err = |step| move |source| BindError { path: path.to_path_buf(), step, source };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(err("create the socket's directory"))?;
    let staging = StagingDir::create(parent).map_err(err("create a private staging directory"))?;
    let listener = staging.bind().map_err(err("bind"))?;
    std::fs::set_permissions(staging.socket(), std::fs::Permissions::from_mode(mode))
        .map_err(err("set the socket's permissions"))?;
    std::fs::rename(staging.socket(), path).map_err(err("move the socket into place"))?;
    listener.set_nonblocking(true).map_err(err("set non-blocking"))?;
    tokio::net::UnixListener::from_std(listener).map_err(err("register with the runtime"))
}

/// A directory of mode 0700 next to the final path, removed on drop.
struct StagingDir {
    dir: PathBuf,
}

impl StagingDir {
    fn create(parent: &Path) -> std::io::Result<Self> {
        // Short names keep the staging path within sun_path whenever the final one is.
        let seed = std::process::id()
            ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let mut n = seed;
        loop {
            let dir = parent.join(format!(".u{:06x}", n & 0xff_ffff));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(Self { dir }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n.wrapping_sub(seed) < 64 => {
                    n = n.wrapping_add(1);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("s")
    }

    /// Binds in the staging directory; through `/proc/self/fd` when its path is too long for
    /// `sun_path` (the final path is never bound, so only a reachable-by-path check applies there).
    fn bind(&self) -> std::io::Result<std::os::unix::net::UnixListener> {
        let socket = self.socket();
        if socket.as_os_str().len() <= SUN_PATH_MAX {
            return std::os::unix::net::UnixListener::bind(&socket);
        }
        let dir = std::fs::File::open(&self.dir)?;
        use std::os::fd::AsRawFd;
        std::os::unix::net::UnixListener::bind(format!("/proc/self/fd/{}/s", dir.as_raw_fd()))
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.socket());
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[tokio::test]
    async fn socket_has_the_mode_asked_for_and_nothing_is_left_behind() {
        let tmp = tempfile::tempdir().unwrap();
        for m in [0o777, 0o770, 0o700] {
            let path = tmp.path().join("sub/api.sock");
            let listener = bind(&path, m).unwrap();
            assert_eq!(mode(&path), m);
            assert!(std::fs::metadata(&path).unwrap().file_type().is_socket());
            let entries: Vec<_> =
                std::fs::read_dir(tmp.path().join("sub")).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(entries, vec![std::ffi::OsString::from("api.sock")], "the staging directory is gone");
            let _client = tokio::net::UnixStream::connect(&path).await.expect("connect by the final path");
            let (_conn, _) = listener.accept().await.unwrap();
        }
    }

    #[tokio::test]
    async fn stale_socket_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("api.sock");
        let old = bind(&path, 0o770).unwrap();
        drop(old);
        let _new = bind(&path, 0o770).unwrap();
        tokio::net::UnixStream::connect(&path).await.expect("the new socket answers");
    }

    #[tokio::test]
    async fn long_paths_bind_through_proc_self_fd() {
        let tmp = tempfile::tempdir().unwrap();
        // A directory whose staging path exceeds sun_path while the final name still fits.
        let base = tmp.path().as_os_str().len();
        let dir = tmp.path().join("d".repeat(SUN_PATH_MAX - base - 1 - 4));
        let path = dir.join("a.s");
        assert_eq!(path.as_os_str().len(), SUN_PATH_MAX);
        let _listener = bind(&path, 0o777).unwrap();
        assert_eq!(mode(&path), 0o777);
        tokio::net::UnixStream::connect(&path).await.expect("connect");
    }

    #[test]
    fn a_directory_in_the_way_is_an_error_naming_the_step() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("api.sock");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("keep"), b"").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let err = rt.block_on(async { bind(&path, 0o777).unwrap_err() });
        assert_eq!(err.step, "move the socket into place");
        assert!(err.to_string().contains("api.sock"), "{err}");
    }
}
