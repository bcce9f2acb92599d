//! Who is calling on the agent's Unix socket, and whether it is still the same process afterwards.
//!
//! The Workload API names its caller by the PID the kernel reports for the socket peer, and workload
//! attestation then reads that process's attributes from `/proc`. In between, the caller can exit and
//! its PID be handed to another process, which would be attested, and served an identity, in its
//! place. Like SPIRE's `pkg/common/peertracker`, a [`Watcher`] taken when the connection is accepted
//! pins the process down (a handle on its `/proc/<pid>` directory, its start time, its owner and, where
//! the kernel has them, a pidfd), and after attestation [`Watcher::check`] tells whether it is still
//! the same, live process; if not, the selectors gathered for the PID must be thrown away.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use nix::sys::socket::{getsockopt, sockopt};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tokio::net::unix::UCred;
use tonic::transport::server::{Connected, UdsConnectInfo};

/// Why a caller could not be identified, or is no longer the process that connected.
///
/// The messages follow SPIRE's peertracker, so logs read the same.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The socket reported no PID for its peer (a peer in another PID namespace shows as 0).
    #[error("could not resolve caller information")]
    NoCallerInfo,
    /// The peer credentials could not be read from the socket.
    #[error("could not read caller credentials: {0}")]
    Credentials(#[source] io::Error),
    /// The caller's `/proc/<pid>` directory could not be opened: usually it has already exited.
    #[error("could not open caller's proc directory: {0}")]
    OpenProc(#[source] io::Error),
    /// The caller's `/proc/<pid>/stat` could not be read when the connection was accepted.
    #[error("could not read caller stats: {0}")]
    ReadStat(#[source] io::Error),
    /// `/proc/<pid>/stat` had no start time where the kernel puts it.
    #[error("bad stat data or unsupported platform")]
    BadStat,
    /// The caller's pidfd says it has exited (it may still be a zombie holding its PID).
    #[error("caller exit detected: its pidfd reports it has exited")]
    Exited,
    /// The caller's proc entries can no longer be read through the handle taken at accept time.
    #[error("caller exit suspected due to failed proc read")]
    ProcReadFailed,
    /// The PID now belongs to a process that started at another time.
    #[error("new process detected: starttime mismatch")]
    StartTimeMismatch,
    /// The process behind the PID runs as another user than the one that connected.
    #[error("new process detected: process uid {actual} does not match original caller {expected}")]
    UidMismatch {
        /// Owner of `/proc/<pid>` now.
        actual: u32,
        /// Effective uid the socket reported at connect time.
        expected: u32,
    },
    /// The process behind the PID runs as another group than the one that connected.
    #[error("new process detected: process gid {actual} does not match original caller {expected}")]
    GidMismatch {
        /// Group of `/proc/<pid>` now.
        actual: u32,
        /// Effective gid the socket reported at connect time.
        expected: u32,
    },
}

/// Where process information is read from: `/proc`, or `$HOST_PROC` when it is set.
///
/// `HOST_PROC` is SPIRE's (and gopsutil's) override for an agent that sees the host's processes
/// through a procfs mounted elsewhere, e.g. in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcRoot(PathBuf);

impl ProcRoot {
    /// The environment variable that overrides `/proc`.
    pub const ENV: &'static str = "HOST_PROC";

    /// `$HOST_PROC` if set and non-empty, else `/proc`.
    pub fn from_env() -> Self {
        Self::from_env_value(std::env::var_os(Self::ENV))
    }

    fn from_env_value(value: Option<OsString>) -> Self {
        match value {
            Some(value) if !value.is_empty() => Self(value.into()),
            _ => Self(PathBuf::from("/proc")),
        }
    }

    /// A procfs (or a tree laid out like one) at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }

    /// The root directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `<root>/<pid>`.
    pub fn pid_dir(&self, pid: i32) -> PathBuf {
        self.0.join(pid.to_string())
    }

    /// `<root>/<pid>/<name>`, e.g. `status` or `exe`.
    pub fn pid_file(&self, pid: i32, name: &str) -> PathBuf {
        self.pid_dir(pid).join(name)
    }
}

impl Default for ProcRoot {
    fn default() -> Self {
        Self::from_env()
    }
}

/// The credentials the kernel recorded for a Unix socket peer when it connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerCredentials {
    /// Process ID (thread-group ID) of the peer, in the agent's PID namespace.
    pub pid: i32,
    /// Effective uid of the peer at connect time.
    pub uid: u32,
    /// Effective gid of the peer at connect time.
    pub gid: u32,
}

impl PeerCredentials {
    /// From `SO_PEERCRED` as tokio reports it; a missing or zero PID is refused, since attestation
    /// needs a process to look at.
    pub fn from_ucred(cred: UCred) -> Result<Self, PeerError> {
        match cred.pid() {
            Some(pid) if pid > 0 => Ok(Self { pid, uid: cred.uid(), gid: cred.gid() }),
            _ => Err(PeerError::NoCallerInfo),
        }
    }

    /// The peer of an accepted connection.
    pub fn from_stream(stream: &UnixStream) -> Result<Self, PeerError> {
        Self::from_ucred(stream.peer_cred().map_err(PeerError::Credentials)?)
    }

    /// The peer tonic recorded for a connection served from a plain `UnixStream`.
    ///
    /// Prefer serving [`TrackedUnixStream`]s: they pin the caller down at accept time, while this only
    /// gives a PID that can be watched from the first request on.
    pub fn from_connect_info(info: &UdsConnectInfo) -> Result<Self, PeerError> {
        Self::from_ucred(info.peer_cred.ok_or(PeerError::NoCallerInfo)?)
    }
}

/// Makes [`Watcher`]s. Cheap to clone; holds only where `/proc` is.
///
/// PIDs (from `SO_PEERCRED`, and for `pidfd_open`) are those of the agent's own PID namespace, so a
/// `HOST_PROC` must show that same namespace, as it does for an agent running with the host's PIDs.
#[derive(Debug, Clone, Default)]
pub struct PeerTracker {
    proc_root: ProcRoot,
}

impl PeerTracker {
    /// A tracker reading `/proc`, or `$HOST_PROC`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tracker reading process information under `proc_root`.
    pub fn with_proc_root(proc_root: ProcRoot) -> Self {
        Self { proc_root }
    }

    /// Where this tracker reads process information.
    pub fn proc_root(&self) -> &ProcRoot {
        &self.proc_root
    }

    /// Watches a process known only by its PID.
    ///
    /// The pidfd comes from `pidfd_open`, so a process that exited and had its PID reused before this
    /// call is not detected; for socket callers use [`PeerTracker::watch_stream`].
    pub fn watch(&self, pid: i32) -> Result<Watcher, PeerError> {
        let pid_handle = Pid::from_raw(pid).ok_or(PeerError::NoCallerInfo)?;
        let pidfd = open_pidfd(pid_handle)?;
        Watcher::open(&self.proc_root, pid, pidfd, None)
    }

    /// Watches the peer of an accepted connection; call it right after accept.
    ///
    /// On Linux 6.5 and later the pidfd comes from the socket itself (`SO_PEERPIDFD`), so it names
    /// the process that connected even if that one has since exited and its PID been reused; before
    /// that, `pidfd_open` (Linux 5.3) is used, and before that only the start time and owner checks
    /// remain. The owner of `/proc/<pid>` must match the credentials the socket reported, as in SPIRE.
    pub fn watch_stream(&self, stream: &UnixStream) -> Result<Watcher, PeerError> {
        let creds = PeerCredentials::from_stream(stream)?;
        let pidfd = match getsockopt(stream, sockopt::PeerPidfd) {
            Ok(pidfd) => Some(pidfd),
            Err(_) => open_pidfd(Pid::from_raw(creds.pid).ok_or(PeerError::NoCallerInfo)?)?,
        };
        Watcher::open(&self.proc_root, creds.pid, pidfd, Some(creds))
    }

    /// Watches a caller known from credentials alone (e.g. tonic's [`UdsConnectInfo`]), checking the
    /// owner of `/proc/<pid>` against them.
    pub fn watch_credentials(&self, creds: PeerCredentials) -> Result<Watcher, PeerError> {
        let pidfd = open_pidfd(Pid::from_raw(creds.pid).ok_or(PeerError::NoCallerInfo)?)?;
        Watcher::open(&self.proc_root, creds.pid, pidfd, Some(creds))
    }
}

/// `pidfd_open`, or `None` where the kernel lacks it (before 5.3) or a sandbox forbids it.
fn open_pidfd(pid: Pid) -> Result<Option<OwnedFd>, PeerError> {
    match rustix::process::pidfd_open(pid, PidfdFlags::empty()) {
        Ok(pidfd) => Ok(Some(pidfd)),
        Err(Errno::SRCH) => Err(PeerError::Exited),
        Err(_) => Ok(None),
    }
}

/// One caller, pinned down when its connection was accepted.
///
/// Holds its `/proc/<pid>` directory open: entries read through that handle belong to the original
/// process or fail, whatever process the PID number later names.
#[derive(Debug)]
pub struct Watcher {
    pid: i32,
    proc_dir: OwnedFd,
    start_time: u64,
    pidfd: Option<OwnedFd>,
    owner: Option<PeerCredentials>,
    /// `status`, opened through `proc_dir` at the first attestation and re-read from offset 0 by the
    /// next ones (procfs regenerates it on every such read), which saves opening it on every call.
    status: Mutex<Option<File>>,
}

impl Watcher {
    fn open(
        root: &ProcRoot,
        pid: i32,
        pidfd: Option<OwnedFd>,
        owner: Option<PeerCredentials>,
    ) -> Result<Self, PeerError> {
        // The directory handle first: it is the quickest thing to take, and the rest is read through it.
        let proc_dir =
            rustix::fs::open(root.pid_dir(pid), OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                .map_err(|errno| PeerError::OpenProc(errno.into()))?;
        let start_time = read_start_time(&proc_dir).map_err(PeerError::ReadStat)?.ok_or(PeerError::BadStat)?;
        let watcher = Self { pid, proc_dir, start_time, pidfd, owner, status: Mutex::default() };
        // With a pidfd taken before the directory, a live process now means the directory is its own.
        watcher.check_pidfd()?;
        Ok(watcher)
    }

    /// The caller's PID, to attest.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the kernel gave a pidfd (Linux 5.3+), so a zombie caller counts as exited.
    pub fn has_pidfd(&self) -> bool {
        self.pidfd.is_some()
    }

    /// The credentials the caller connected with, when watched from a socket or credentials.
    pub fn credentials(&self) -> Option<PeerCredentials> {
        self.owner
    }

    /// Whether the caller is still the live process that connected; the reason when not.
    pub fn check(&self) -> Result<(), PeerError> {
        if self.pidfd.is_some() {
            // The pidfd's process is the one whose directory we hold (checked at open) and, while it
            // has not exited, its PID cannot name another process: the start time, which a live
            // process never changes, need not be read again (that read is a third of this check).
            self.check_pidfd()?;
        } else {
            // Reading through the handle fails once the original process is gone, even if its PID is
            // reused; a process started since under the same PID has another start time.
            let start_time = read_start_time(&self.proc_dir).map_err(|_| PeerError::ProcReadFailed)?;
            if start_time != Some(self.start_time) {
                return Err(PeerError::StartTimeMismatch);
            }
        }
        if let Some(owner) = self.owner {
            // If a PID race was lost when the handle was taken, at least the winner must run as the
            // same user and group as the caller did.
            let stat = rustix::fs::fstat(&self.proc_dir).map_err(|_| PeerError::ProcReadFailed)?;
            if stat.st_uid != owner.uid {
                return Err(PeerError::UidMismatch { actual: stat.st_uid, expected: owner.uid });
            }
            if stat.st_gid != owner.gid {
                return Err(PeerError::GidMismatch { actual: stat.st_gid, expected: owner.gid });
            }
        }
        Ok(())
    }

    /// The caller's `/proc/<pid>/status`, current as of this read, through the handle taken at accept.
    fn read_status(&self) -> io::Result<String> {
        // One reader at a time: a status longer than one read is taken in pieces from one rendering.
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if status.is_none() {
            let fd = rustix::fs::openat(&self.proc_dir, "status", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
            *status = Some(File::from(fd));
        }
        let file = status.as_ref().expect("opened above");
        read_to_end_at(|buf, at| file.read_at(buf, at))
    }

    /// [`Watcher::check`] as a yes or no.
    pub fn is_alive(&self) -> bool {
        self.check().is_ok()
    }

    /// A pidfd polls readable once its process has exited.
    fn check_pidfd(&self) -> Result<(), PeerError> {
        let Some(pidfd) = &self.pidfd else { return Ok(()) };
        let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
        let now = Timespec { tv_sec: 0, tv_nsec: 0 };
        match rustix::event::poll(&mut fds, Some(&now)) {
            Ok(0) => Ok(()),
            Ok(_) => Err(PeerError::Exited),
            Err(_) => Err(PeerError::ProcReadFailed),
        }
    }
}

/// Reads a small procfs file whole with `read(buf, offset)` from offset 0, without first asking for
/// its size (procfs reports 0): one read for the usual few KiB, then the one that finds the end.
pub(crate) fn read_to_end_at(read: impl FnMut(&mut [u8], u64) -> io::Result<usize>) -> io::Result<String> {
    String::from_utf8(read_bytes_to_end_at(read)?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// [`read_to_end_at`] for a file that may hold bytes that are not UTF-8 (a cgroup name may): they
/// are replaced by U+FFFD.
pub(crate) fn read_to_end_at_lossy(read: impl FnMut(&mut [u8], u64) -> io::Result<usize>) -> io::Result<String> {
    let bytes = read_bytes_to_end_at(read)?;
    Ok(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

fn read_bytes_to_end_at(mut read: impl FnMut(&mut [u8], u64) -> io::Result<usize>) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match read(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// The process a workload attestor looks at: a PID and, for a Workload API caller, the [`Watcher`]
/// taken when it connected. A caller's `/proc` entries are read through the watcher's handle, so they
/// are the caller's or the read fails, even if its PID has been reused since.
#[derive(Debug, Clone, Copy)]
pub struct Process<'a> {
    pid: i32,
    watcher: Option<&'a Watcher>,
}

impl<'a> Process<'a> {
    /// A process known only by its PID (read under the attestor's proc root).
    pub fn from_pid(pid: i32) -> Self {
        Self { pid, watcher: None }
    }

    /// A Workload API caller.
    pub fn caller(watcher: &'a Watcher) -> Self {
        Self { pid: watcher.pid, watcher: Some(watcher) }
    }

    /// The PID.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// `<root>/<pid>/status`, read now.
    pub fn status(&self, root: &ProcRoot) -> io::Result<String> {
        match self.watcher {
            Some(w) => w.read_status(),
            None => {
                let file = File::open(root.pid_file(self.pid, "status"))?;
                read_to_end_at(|buf, at| file.read_at(buf, at))
            }
        }
    }

    /// Opens `<root>/<pid>/<name>` (e.g. `exe`, which opens the executable the process runs).
    pub fn open(&self, root: &ProcRoot, name: &str) -> io::Result<File> {
        match self.watcher {
            Some(w) => {
                let fd = rustix::fs::openat(&w.proc_dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
                Ok(File::from(fd))
            }
            None => File::open(root.pid_file(self.pid, name)),
        }
    }

    /// The target of the link `<root>/<pid>/<name>` (e.g. `exe`).
    pub fn read_link(&self, root: &ProcRoot, name: &str) -> io::Result<PathBuf> {
        match self.watcher {
            Some(w) => Ok(PathBuf::from(OsString::from_vec(
                rustix::fs::readlinkat(&w.proc_dir, name, Vec::new())?.into_bytes(),
            ))),
            None => std::fs::read_link(root.pid_file(self.pid, name)),
        }
    }
}

/// Field 22 of `<proc_dir>/stat`, the start time in clock ticks since boot; `None` if malformed.
fn read_start_time(proc_dir: &OwnedFd) -> io::Result<Option<u64>> {
    let fd = rustix::fs::openat(proc_dir, "stat", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    // A fixed buffer read to EOF: `read_to_string` on a `File` would first ask for its size and
    // position (two more system calls, and procfs reports size 0 anyway). The file is a few hundred
    // bytes; one longer than the buffer is malformed.
    let mut file = File::from(fd);
    let mut buf = [0u8; 2048];
    let mut len = 0;
    loop {
        if len == buf.len() {
            return Ok(None);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(std::str::from_utf8(&buf[..len]).ok().and_then(parse_start_time))
}

/// The command name (field 2) is in parentheses and may hold spaces and parentheses itself, so fields
/// are counted from the last `)`: field 3 is the first after it, field 22 the twentieth.
fn parse_start_time(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_ascii_whitespace().nth(22 - 3)?.parse().ok()
}

/// What a Workload API handler learns about its caller: the credentials it connected with and the
/// [`Watcher`] to check once the caller has been attested.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    credentials: PeerCredentials,
    watcher: Arc<Watcher>,
}

impl PeerInfo {
    /// The credentials the socket reported.
    pub fn credentials(&self) -> PeerCredentials {
        self.credentials
    }

    /// The caller's PID.
    pub fn pid(&self) -> i32 {
        self.credentials.pid
    }

    /// The watcher taken at accept time.
    pub fn watcher(&self) -> &Watcher {
        &self.watcher
    }
}

/// An accepted Workload API connection whose caller was pinned down at accept time.
///
/// Serve these instead of plain `UnixStream`s (`Server::serve_with_incoming`): tonic then puts the
/// [`PeerInfo`] in every request's extensions. A connection whose caller cannot be watched (it has
/// already gone) fails [`TrackedUnixStream::new`] and should be dropped, as SPIRE closes it.
#[derive(Debug)]
pub struct TrackedUnixStream {
    stream: UnixStream,
    peer: PeerInfo,
}

impl TrackedUnixStream {
    /// Watches the peer of a freshly accepted connection.
    pub fn new(stream: UnixStream, tracker: &PeerTracker) -> Result<Self, PeerError> {
        let watcher = tracker.watch_stream(&stream)?;
        let credentials = watcher.credentials().ok_or(PeerError::NoCallerInfo)?;
        Ok(Self { stream, peer: PeerInfo { credentials, watcher: Arc::new(watcher) } })
    }

    /// The caller.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    /// The connection itself.
    pub fn into_inner(self) -> UnixStream {
        self.stream
    }
}

impl Connected for TrackedUnixStream {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl AsyncRead for TrackedUnixStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedUnixStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_pid() -> i32 {
        i32::try_from(std::process::id()).expect("pid fits in i32")
    }

    #[test]
    fn start_time_is_field_22_even_with_odd_command_names() {
        let tail = "S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 123456 19 20 21 22 23 24 25 26 27 28 29 30 31";
        assert_eq!(parse_start_time(&format!("42 (sleep) {tail}")), Some(123456));
        assert_eq!(parse_start_time(&format!("42 (a b) c)) {tail}")), Some(123456));
        assert_eq!(parse_start_time("42 (sleep) S 1 2"), None);
        assert_eq!(parse_start_time("garbage"), None);
    }

    /// A `read(buf, offset)` over `data`, at most `chunk` bytes at a time.
    fn reader(data: &[u8], chunk: usize) -> impl FnMut(&mut [u8], u64) -> io::Result<usize> + '_ {
        move |buf, at| {
            let rest = &data[usize::try_from(at).unwrap().min(data.len())..];
            let n = buf.len().min(rest.len()).min(chunk);
            buf[..n].copy_from_slice(&rest[..n]);
            Ok(n)
        }
    }

    #[test]
    fn files_are_read_whole_strictly_or_lossily() {
        let text: String = (0..10_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        assert_eq!(read_to_end_at(reader(text.as_bytes(), 3000)).unwrap(), text);
        assert_eq!(read_to_end_at_lossy(reader(text.as_bytes(), 5000)).unwrap(), text);
        let bytes = b"0::/a\xffb\n";
        assert_eq!(read_to_end_at(reader(bytes, 100)).unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert_eq!(read_to_end_at_lossy(reader(bytes, 100)).unwrap(), "0::/a\u{fffd}b\n");
        let failing = |_: &mut [u8], _: u64| Err(io::Error::from_raw_os_error(13));
        assert_eq!(read_to_end_at_lossy(failing).unwrap_err().raw_os_error(), Some(13));
    }

    #[test]
    fn host_proc_overrides_proc_unless_empty() {
        assert_eq!(ProcRoot::from_env_value(None).path(), Path::new("/proc"));
        assert_eq!(ProcRoot::from_env_value(Some(OsString::new())).path(), Path::new("/proc"));
        let host = ProcRoot::from_env_value(Some("/host/proc".into()));
        assert_eq!(host.pid_file(7, "status"), Path::new("/host/proc/7/status"));
    }

    #[test]
    fn without_a_pidfd_a_different_start_time_means_a_new_process() {
        let mut watcher = Watcher::open(&ProcRoot::from_env(), own_pid(), None, None).unwrap();
        assert!(watcher.is_alive());
        // What a reused PID looks like: the same number, a process started at another time.
        watcher.start_time += 1;
        assert!(matches!(watcher.check(), Err(PeerError::StartTimeMismatch)));
        assert!(!watcher.is_alive());
    }

    #[test]
    fn a_different_owner_means_a_new_process() {
        let tracker = PeerTracker::new();
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        let me = PeerCredentials { pid: own_pid(), uid, gid };
        assert!(tracker.watch_credentials(me).unwrap().is_alive());

        let other_uid = tracker.watch_credentials(PeerCredentials { uid: uid + 1, ..me }).unwrap();
        let err = other_uid.check().unwrap_err();
        assert!(matches!(err, PeerError::UidMismatch { actual, expected } if actual == uid && expected == uid + 1));
        let other_gid = tracker.watch_credentials(PeerCredentials { gid: gid + 1, ..me }).unwrap();
        assert!(matches!(other_gid.check(), Err(PeerError::GidMismatch { .. })));
    }

    #[test]
    fn without_a_pidfd_the_proc_handle_still_notices_the_exit() {
        // What kernels before 5.3 get: the start time read through the directory handle alone.
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let watcher = Watcher::open(&ProcRoot::from_env(), pid, None, None).unwrap();
        assert!(!watcher.has_pidfd());
        assert!(watcher.is_alive());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(matches!(watcher.check(), Err(PeerError::ProcReadFailed)));
    }

    #[test]
    fn a_callers_status_is_read_fresh_through_its_handle_and_not_after_it_exits() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let watcher = PeerTracker::new().watch(pid).unwrap();
        let process = Process::caller(&watcher);
        let root = ProcRoot::from_env();
        for _ in 0..2 {
            // The second read goes through the handle kept from the first.
            let status = process.status(&root).unwrap();
            assert!(status.contains(&format!("\nPid:\t{pid}\n")), "{status}");
        }
        assert!(process.read_link(&root, "exe").unwrap().ends_with("sleep"));
        child.kill().unwrap();
        child.wait().unwrap();
        // Gone: the held handles fail, whatever process the PID names next.
        assert!(process.status(&root).is_err());
        assert!(process.open(&root, "exe").is_err());
    }

    #[test]
    fn pid_zero_is_no_caller() {
        assert!(matches!(PeerTracker::new().watch(0), Err(PeerError::NoCallerInfo)));
    }

    #[test]
    fn a_missing_process_cannot_be_watched() {
        // Beyond the kernel's PID limit (4194304 at most), so never a live process.
        let err = PeerTracker::new().watch(i32::MAX).unwrap_err();
        assert!(matches!(err, PeerError::Exited | PeerError::OpenProc(_)), "{err}");
    }
}
