//! SPIRE's `unix` workload attestor: the caller's users and groups, and optionally its executable.
//!
//! Reads `/proc/<pid>` (or `$HOST_PROC/<pid>`) as SPIRE does through gopsutil, and returns the same
//! selector values in the same order: `uid:<euid>`, `user:<name>`, `gid:<egid>`, `group:<name>`, then
//! for each supplementary group `supplementary_gid:<gid>` and `supplementary_group:<name>`; with
//! `discover_workload_path`, `path:<exe>` and, unless `workload_size_limit` is negative,
//! `sha256:<hex>`. Names appear only when the user or group database resolves the ID. Last, `pid:<pid>`
//! (ours: the workload attestation document lists it; SPIRE's agent has no such selector).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lc_rs::digest;
use nix::unistd::{Gid, Group, Uid, User};

use super::{AttestError, WorkloadAttestor};
use crate::peer::{ProcRoot, Process};

/// The plugin name, hence the selector type.
pub const PLUGIN_NAME: &str = "unix";

/// The plugin's configuration (SPIRE's HCL keys).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnixConfig {
    /// `discover_workload_path`: add `path` and `sha256` selectors. Off by default, since reading
    /// another user's executable needs privileges the agent may not have.
    pub discover_workload_path: bool,
    /// `workload_size_limit`: the largest executable hashed, in bytes; 0 for no limit, negative to
    /// never hash (then only `path` is added).
    pub workload_size_limit: i64,
}

/// Why the unix attestor could not attest a process; messages are SPIRE's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnixError {
    /// The process's status could not be read: usually it no longer exists.
    #[error("failed to get process: {0}")]
    Process(#[source] io::Error),
    /// The `Uid:` line is missing or malformed.
    #[error("UIDs lookup: {0}")]
    Uids(String),
    /// The `Gid:` line is missing or malformed.
    #[error("GIDs lookup: {0}")]
    Gids(String),
    /// The `Groups:` line is malformed.
    #[error("supplementary GIDs lookup: {0}")]
    Groups(String),
    /// The executable's path could not be read.
    #[error("path lookup: {0}")]
    Path(#[source] io::Error),
    /// The executable could not be opened or read.
    #[error("SHA256 digest: {0}")]
    Digest(#[source] io::Error),
    /// The executable is larger than `workload_size_limit`.
    #[error("SHA256 digest: workload {} exceeds size limit ({size} > {limit})", .path.display())]
    TooLarge {
        /// What was opened: `/proc/<pid>/exe`.
        path: PathBuf,
        /// The executable's size in bytes.
        size: u64,
        /// The configured limit.
        limit: i64,
    },
}

/// A caller's executable, opened through its `/proc` entry, and that entry's path for messages.
type Executable = (File, PathBuf);

/// The unix workload attestor.
#[derive(Debug, Clone)]
pub struct UnixAttestor {
    config: UnixConfig,
    proc_root: ProcRoot,
}

impl UnixAttestor {
    /// An attestor reading `/proc`, or `$HOST_PROC`.
    pub fn new(config: UnixConfig) -> Self {
        Self::with_proc_root(config, ProcRoot::from_env())
    }

    /// An attestor reading process information under `proc_root`.
    pub fn with_proc_root(config: UnixConfig, proc_root: ProcRoot) -> Self {
        Self { config, proc_root }
    }

    /// The selector values for `process`, but for `sha256`, and the executable to hash for it when
    /// that is wanted. Reads `/proc` and resolves names through NSS: a few µs, not worth a thread hop.
    fn attest_ids(&self, process: Process<'_>) -> Result<(Vec<String>, Option<Executable>), UnixError> {
        let status = process.status(&self.proc_root).map_err(UnixError::Process)?;
        let status = Status::parse(&status)?;
        let mut values = Vec::new();

        values.push(format!("uid:{}", status.uid));
        if let Some(user) = user_name(status.uid) {
            values.push(format!("user:{user}"));
        }
        values.push(format!("gid:{}", status.gid));
        if let Some(group) = group_name(status.gid) {
            values.push(format!("group:{group}"));
        }
        for gid in &status.groups {
            values.push(format!("supplementary_gid:{gid}"));
            if let Some(group) = group_name(*gid) {
                values.push(format!("supplementary_group:{group}"));
            }
        }

        let mut to_hash = None;
        if self.config.discover_workload_path {
            let path = process.read_link(&self.proc_root, "exe").map_err(UnixError::Path)?;
            values.push(format!("path:{}", path.to_string_lossy()));
            if self.config.workload_size_limit >= 0 {
                // Through the link, not the path: that is the file the process runs, even if the one
                // at `path` has since been replaced.
                let exe = self.proc_root.pid_file(process.pid(), "exe");
                to_hash = Some((process.open(&self.proc_root, "exe").map_err(UnixError::Digest)?, exe));
            }
        }
        Ok((values, to_hash))
    }
}

#[async_trait]
impl WorkloadAttestor for UnixAttestor {
    fn name(&self) -> &str {
        PLUGIN_NAME
    }

    async fn attest(&self, process: Process<'_>) -> Result<Vec<String>, AttestError> {
        let (mut values, to_hash) = self.attest_ids(process).map_err(AttestError::plugin)?;
        // Hashing a large executable takes milliseconds: on a blocking thread.
        if let Some((file, path)) = to_hash {
            let limit = self.config.workload_size_limit;
            let digest = tokio::task::spawn_blocking(move || sha256_file(file, &path, limit))
                .await
                .map_err(AttestError::plugin)?
                .map_err(AttestError::plugin)?;
            values.push(format!("sha256:{digest}"));
        }
        // Ours, after SPIRE's: no SPIRE entry selects it, so it never changes what they match.
        values.push(format!("pid:{}", process.pid()));
        Ok(values)
    }
}

/// The IDs from `/proc/<pid>/status` that the selectors are made of.
#[derive(Debug, PartialEq, Eq)]
struct Status {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

impl Status {
    fn parse(text: &str) -> Result<Self, UnixError> {
        let mut uids = None;
        let mut gids = None;
        let mut groups = None;
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else { continue };
            match key.trim().to_ascii_lowercase().as_str() {
                "uid" => uids = Some(value),
                "gid" => gids = Some(value),
                "groups" => groups = Some(value),
                _ => {}
            }
        }
        let uid = effective_id(uids.ok_or_else(|| UnixError::Uids("no UIDs for process".into()))?)
            .map_err(UnixError::Uids)?;
        let gid = effective_id(gids.ok_or_else(|| UnixError::Gids("no GIDs for process".into()))?)
            .map_err(UnixError::Gids)?;
        let groups = parse_ids(groups.unwrap_or_default()).map_err(UnixError::Groups)?;
        Ok(Self { uid, gid, groups })
    }
}

/// The line lists real, effective, saved and filesystem IDs: SPIRE takes the effective one, the
/// second, or the only one if there is just one.
fn effective_id(line: &str) -> Result<u32, String> {
    let ids = parse_ids(line)?;
    ids.get(1).or(ids.first()).copied().ok_or_else(|| "no IDs for process".to_owned())
}

fn parse_ids(line: &str) -> Result<Vec<u32>, String> {
    line.split_ascii_whitespace().map(|id| id.parse().map_err(|_| format!("invalid ID {id:?}"))).collect()
}

/// How long a resolved (or unresolved) user or group name is reused. Each lookup goes through NSS
/// (for `files`, opening and scanning `/etc/passwd` or `/etc/group`), about 5 µs apiece, several
/// per Workload API call; a second keeps a renamed user's old name only briefly. Only the ID to
/// name mapping is cached: every call still reads the caller's IDs from `/proc`.
const NAME_TTL: Duration = Duration::from_secs(1);

/// Upper bound on cached names, so a stream of callers with distinct IDs cannot grow it unbounded.
const NAME_CACHE_MAX: usize = 1024;

type NameCache = Mutex<HashMap<u32, (Instant, Option<String>)>>;

fn cached_name(cache: &NameCache, id: u32, lookup: impl FnOnce(u32) -> Option<String>) -> Option<String> {
    let now = Instant::now();
    if let Some((at, name)) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&id)
        && now.duration_since(*at) < NAME_TTL
    {
        return name.clone();
    }
    let name = lookup(id);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= NAME_CACHE_MAX {
        cache.retain(|_, (at, _)| now.duration_since(*at) < NAME_TTL);
        if cache.len() >= NAME_CACHE_MAX {
            cache.clear();
        }
    }
    cache.insert(id, (now, name.clone()));
    name
}

fn user_name(uid: u32) -> Option<String> {
    static USERS: LazyLock<NameCache> = LazyLock::new(Default::default);
    cached_name(&USERS, uid, |uid| User::from_uid(Uid::from_raw(uid)).ok().flatten().map(|user| user.name))
}

fn group_name(gid: u32) -> Option<String> {
    static GROUPS: LazyLock<NameCache> = LazyLock::new(Default::default);
    cached_name(&GROUPS, gid, |gid| Group::from_gid(Gid::from_raw(gid)).ok().flatten().map(|group| group.name))
}

/// Lowercase hex SHA-256 of `file` (opened from `path`), refused if larger than a positive `limit`.
fn sha256_file(mut file: File, path: &Path, limit: i64) -> Result<String, UnixError> {
    if limit > 0 {
        let size = file.metadata().map_err(UnixError::Digest)?.len();
        if u64::try_from(limit).is_ok_and(|limit| size > limit) {
            return Err(UnixError::TooLarge { path: path.to_owned(), size, limit });
        }
    }
    let mut context = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => context.update(&buf[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(UnixError::Digest(err)),
        }
    }
    Ok(context.finish().as_ref().iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_gives_effective_ids_and_supplementary_groups() {
        let text = "Name:\tsleep\nUid:\t1000\t1001\t1002\t1003\nGid:\t2000\t2001\t2002\t2003\nGroups:\t10 20 \n";
        assert_eq!(Status::parse(text).unwrap(), Status { uid: 1001, gid: 2001, groups: vec![10, 20] });
        let single = "Uid:\t5\nGid:\t6\nGroups:\t\n";
        assert_eq!(Status::parse(single).unwrap(), Status { uid: 5, gid: 6, groups: vec![] });
    }

    #[test]
    fn status_without_ids_is_refused_with_spires_messages() {
        assert_eq!(Status::parse("Gid:\t1\t1\t1\t1\n").unwrap_err().to_string(), "UIDs lookup: no UIDs for process");
        assert_eq!(Status::parse("Uid:\t1\t1\t1\t1\n").unwrap_err().to_string(), "GIDs lookup: no GIDs for process");
        assert_eq!(Status::parse("Uid:\nGid:\t1\n").unwrap_err().to_string(), "UIDs lookup: no IDs for process");
        let bad_groups = Status::parse("Uid:\t1\nGid:\t1\nGroups:\tx\n").unwrap_err();
        assert_eq!(bad_groups.to_string(), "supplementary GIDs lookup: invalid ID \"x\"");
    }

    #[test]
    fn too_large_reads_like_spire() {
        let err = UnixError::TooLarge { path: "/proc/42/exe".into(), size: 10, limit: 5 };
        assert_eq!(err.to_string(), "SHA256 digest: workload /proc/42/exe exceeds size limit (10 > 5)");
    }

    #[test]
    fn sha256_of_a_known_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_file(File::open(&path).unwrap(), &path, 0).unwrap(), abc);
        assert_eq!(sha256_file(File::open(&path).unwrap(), &path, 3).unwrap(), abc);
        assert!(matches!(
            sha256_file(File::open(&path).unwrap(), &path, 2),
            Err(UnixError::TooLarge { size: 3, limit: 2, .. })
        ));
    }
}
