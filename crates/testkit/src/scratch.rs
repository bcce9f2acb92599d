//! Scratch directories for processes the tests start and never stop themselves (shared clusters and
//! engines live in statics, which are never dropped): each is named after the test process, and the
//! next test process removes those of processes that have exited, unmounting what a killed daemon
//! left mounted there (Docker's overlays).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// A new directory `<tmp>/<prefix><pid>-XXXXXX`, after removing the stale ones of `prefix`.
pub(crate) fn owned_dir(prefix: &str) -> PathBuf {
    sweep(prefix);
    tempfile::Builder::new().prefix(&format!("{prefix}{}-", std::process::id())).tempdir().expect("temp dir").keep()
}

/// Removes `<tmp>/<prefix><pid>-*` of exited processes, once per prefix per process.
fn sweep(prefix: &str) {
    static SWEPT: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    if !SWEPT.lock().expect("swept").get_or_insert_with(HashSet::new).insert(prefix.to_owned()) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(prefix) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        unmount_under(&entry.path());
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

/// Lazily unmounts every mount point under `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else { return };
    let dir = dir.to_string_lossy();
    let mut points: Vec<&str> =
        mountinfo.lines().filter_map(|l| l.split(' ').nth(4)).filter(|p| p.starts_with(dir.as_ref())).collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = Command::new("umount").args(["-l", point]).stderr(Stdio::null()).status();
    }
}
