//! Where a process runs: the container ID (and, for Kubernetes, the pod UID) read from the cgroup
//! paths the kernel shows for it. Shared by the `k8s` and `docker` workload attestors.
//!
//! This is SPIRE's *container locator* (`pkg/common/containerinfo`): the cgroup mount roots of
//! `/proc/<pid>/mountinfo`, then the paths of `/proc/<pid>/cgroup` if those name no container,
//! each path walked backwards for the last segment holding a 64-hex word (`/docker/<id>`,
//! `/system.slice/docker-<id>.scope`, `.../cri-containerd-<id>.scope`, `...:cri-containerd:<id>`,
//! `/kubepods/burstable/pod<uid>/<id>`) and, for Kubernetes, before it a `pod<uid>`. See
//! [`crate::workload_attestor::k8s::cgroup`] for the Kubernetes layouts and what we refuse that
//! SPIRE accepts.
//!
//! The parsing is pure (text in, answer out) so that it can be table-tested and fuzzed;
//! [`ProcFiles`] reads the two files of a process.

use std::io;
use std::os::unix::fs::FileExt;

use spire_cli::goerror::errno_text;

use crate::peer::{ProcRoot, Process, read_to_end_at_lossy};

/// What the cgroups say about a process: empty strings when unknown. A container ID without a pod
/// UID is possible (CRI-O under KubeEdge); a pod UID without a container ID is never returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The pod's UID in its Kubernetes form (`2c48913c-b29f-11e7-9350-020968147796`).
    pub pod_uid: String,
    /// The container's runtime ID (64 hex digits).
    pub container_id: String,
}

impl Location {
    /// Whether the process runs in a container at all.
    pub fn in_container(&self) -> bool {
        !self.container_id.is_empty()
    }
}

/// Why the cgroups of a process could not be read or gave contradicting answers; messages are
/// SPIRE's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocateError {
    /// `/proc/<pid>/mountinfo` exists but could not be read or parsed.
    #[error("failed to parse mount info at {path:?}: {reason}")]
    MountInfo {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// `/proc/<pid>/cgroup` exists but could not be read or parsed.
    #[error("unable to obtain cgroups: {0}")]
    Cgroups(String),
    /// Two cgroups name different pods (container locator).
    #[error("multiple pod UIDs found ({0:?}, {1:?})")]
    PodUids(String, String),
    /// Two cgroups name different containers (container locator).
    #[error("multiple container IDs found ({0:?}, {1:?})")]
    ContainerIds(String, String),
    /// One cgroup path names two different pods (container locator), as a process that can write
    /// its cgroupfs could make it by nesting a `pod<uid>/<id>` of another pod under its own.
    #[error("multiple pod UIDs found in cgroup path {path:?} ({first:?}, {second:?})")]
    NestedPodUids {
        /// The path (or mount root).
        path: String,
        /// The first pod UID in it, in its Kubernetes form.
        first: String,
        /// A later, different one.
        second: String,
    },
    /// Two cgroups name different containers (legacy matcher).
    #[error("multiple container IDs found in cgroups ({0}, {1})")]
    LegacyContainerIds(String, String),
    /// Two cgroups name different pods (legacy matcher).
    #[error("multiple pod UIDs found in cgroups ({0}, {1})")]
    LegacyPodUids(String, String),
}

// --- file formats ---------------------------------------------------------------------------------

/// The filesystem type and root of each mount in a `mountinfo` file, parsed as Kubernetes'
/// `mount-utils` does (which SPIRE uses): whitespace-separated fields, at least ten, numeric IDs, a
/// `major:minor` pair, optional fields up to `-`, then type, source and super options. The root is
/// taken as written (octal escapes are left alone, as there).
pub fn parse_mountinfo(text: &str) -> Result<Vec<(&str, &str)>, String> {
    let mut mounts = Vec::new();
    for line in text.split('\n').filter(|line| !line.is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 10 {
            return Err(format!("wrong number of fields in (expected at least 10, got {}): {line}", fields.len()));
        }
        go_atoi(fields[0])?;
        go_atoi(fields[1])?;
        let device: Vec<&str> = fields[2].split(':').collect();
        let [major, minor] = device[..] else {
            return Err(format!("parsing '{line}' failed: unexpected minor:major pair [{}]", device.join(" ")));
        };
        go_atoi(major).map_err(|e| format!("parsing '{major}' failed: unable to parse major device id, err:{e}"))?;
        go_atoi(minor).map_err(|e| format!("parsing '{minor}' failed: unable to parse minor device id, err:{e}"))?;
        let separator = fields[6..].iter().position(|f| *f == "-").map_or(fields.len(), |i| i + 6);
        // Signed, as Go counts it: without a `-` there are "-1" fields after it.
        let rest = fields.len() as isize - (separator as isize + 1);
        if rest < 3 {
            return Err(format!("expect 3 fields in {line}, got {rest}"));
        }
        mounts.push((fields[separator + 1], fields[3]));
    }
    Ok(mounts)
}

/// Go's `strconv.Atoi`: an optional sign and decimal digits.
fn go_atoi(field: &str) -> Result<i64, String> {
    field.parse::<i64>().map_err(|_| format!("strconv.Atoi: parsing {field:?}: invalid syntax"))
}

/// The group paths of a `/proc/<pid>/cgroup` file (`hierarchy-ID:controllers:path` per line).
pub fn parse_cgroups(text: &str) -> Result<Vec<&str>, String> {
    text.lines()
        .map(|line| {
            let mut parts = line.splitn(3, ':');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(_), Some(_), Some(path)) => Ok(path),
                _ => Err(format!(
                    "invalid cgroup entry, contains {} colon separated fields but expected at least 3: {line:?}",
                    line.splitn(3, ':').count()
                )),
            }
        })
        .collect()
}

// --- the container locator ------------------------------------------------------------------------

/// SPIRE's container locator over the two files of a process: `mountinfo` first, then, if its cgroup
/// mounts name no container, `cgroup` (read only then). `None` for a file means it does not exist,
/// which is not an error: such a process is just not found in a container.
pub fn locate(
    mountinfo: Option<&str>,
    mountinfo_path: &str,
    read_cgroups: impl FnOnce() -> Result<Option<String>, LocateError>,
) -> Result<Location, LocateError> {
    locate_with(Pods::Find, mountinfo, mountinfo_path, read_cgroups)
}

/// Whether the container locator looks for pod UIDs too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pods {
    /// The k8s attestor: pod UIDs are found, a path with one beats a path without, and a path naming
    /// two pods is refused.
    Find,
    /// The docker attestor (SPIRE's `GetContainerID`): container IDs only, which must all agree.
    Ignore,
}

/// [`locate`], looking for pod UIDs or not.
pub fn locate_with(
    pods: Pods,
    mountinfo: Option<&str>,
    mountinfo_path: &str,
    read_cgroups: impl FnOnce() -> Result<Option<String>, LocateError>,
) -> Result<Location, LocateError> {
    if let Some(text) = mountinfo {
        let mounts = parse_mountinfo(text)
            .map_err(|reason| LocateError::MountInfo { path: mountinfo_path.to_owned(), reason })?;
        let mut found = Extractor::new(pods);
        for (fs_type, root) in mounts {
            if fs_type == "cgroup" || fs_type == "cgroup2" {
                found.add(root)?;
            }
        }
        if found.location.in_container() {
            return Ok(found.location);
        }
    }
    match read_cgroups()? {
        Some(text) => locate_in_cgroups_with(pods, &text),
        None => Ok(Location::default()),
    }
}

/// The container locator over the paths of a `/proc/<pid>/cgroup` file.
pub fn locate_in_cgroups(text: &str) -> Result<Location, LocateError> {
    locate_in_cgroups_with(Pods::Find, text)
}

/// [`locate_in_cgroups`], looking for pod UIDs or not.
pub fn locate_in_cgroups_with(pods: Pods, text: &str) -> Result<Location, LocateError> {
    let mut found = Extractor::new(pods);
    for path in parse_cgroups(text).map_err(LocateError::Cgroups)? {
        found.add(path)?;
    }
    Ok(found.location)
}

/// Folds the answers of several cgroup paths into one, as SPIRE does: a path with a pod UID beats
/// one without (under kind on a unified hierarchy, `0::/docker/<node>/system.slice/...` names the
/// node's container, not the workload's); any other disagreement is an error, since picking one
/// could attest the wrong workload.
#[derive(Debug, Default)]
struct Extractor {
    location: Location,
    /// Whether pod UIDs are looked for (SPIRE's `extractPodUID`: the k8s attestor does, docker's
    /// does not, and then any disagreement about the container is an error).
    pods: bool,
}

impl Extractor {
    fn new(pods: Pods) -> Self {
        Self { location: Location::default(), pods: pods == Pods::Find }
    }

    fn add(&mut self, path: &str) -> Result<(), LocateError> {
        let (pod_uid, container_id) = if self.pods { extract(path)? } else { (String::new(), walk_container(path)) };
        let current = &mut self.location;
        if !current.pod_uid.is_empty() && pod_uid.is_empty() {
            return Ok(());
        }
        if current.pod_uid.is_empty() && !pod_uid.is_empty() {
            current.pod_uid = pod_uid.clone();
            current.container_id = container_id.to_owned();
        }
        if !pod_uid.is_empty() && !current.pod_uid.is_empty() && pod_uid != current.pod_uid {
            return Err(LocateError::PodUids(current.pod_uid.clone(), pod_uid));
        }
        // Like SPIRE, a path without a container once a container without a pod is known is a
        // conflict too (the empty ID differs from the known one).
        if !current.container_id.is_empty() && container_id != current.container_id {
            return Err(LocateError::ContainerIds(current.container_id.clone(), container_id.to_owned()));
        }
        current.container_id = container_id.to_owned();
        current.pod_uid = pod_uid;
        Ok(())
    }
}

/// One path (or mount root), walked backwards segment by segment: the first segment holding a
/// container ID gives it; what precedes the ID in that segment, then the earlier segments, are
/// searched for the pod UID. An empty segment (`//`, or a trailing `/`) ends the walk, as Go's
/// `path.Split` loop does. A path that names two different pods anywhere is an error.
pub(crate) fn extract(path: &str) -> Result<(String, &str), LocateError> {
    let mut pods = pod_uids(path);
    if let Some(first) = pods.next()
        && let Some(second) = pods.find(|uid| !same_pod_uid(uid, first))
    {
        let canonical = |uid: &str| uid.replace('_', "-");
        return Err(LocateError::NestedPodUids {
            path: path.to_owned(),
            first: canonical(first),
            second: canonical(second),
        });
    }
    Ok(walk(path))
}

/// [`extract`]'s walk, once the path is known to name at most one pod.
fn walk(path: &str) -> (String, &str) {
    let (mut rest, mut segment) = split_last(path);
    let mut container_id = "";
    while !segment.is_empty() {
        if let Some(start) = find_container_id(segment) {
            container_id = &segment[start..start + 64];
            segment = &segment[..start];
            break;
        }
        (rest, segment) = split_last(rest);
    }
    if container_id.is_empty() {
        return (String::new(), "");
    }
    if segment.is_empty() {
        (rest, segment) = split_last(rest);
    }
    while !segment.is_empty() {
        if let Some(uid) = find_pod_uid(segment) {
            return (uid.replace('_', "-"), container_id);
        }
        (rest, segment) = split_last(rest);
    }
    (String::new(), container_id)
}

/// The container ID alone: the first segment from the end holding one (SPIRE's walk without
/// `extractPodUID`); empty if none does.
fn walk_container(path: &str) -> &str {
    let (mut rest, mut segment) = split_last(path);
    while !segment.is_empty() {
        if let Some(start) = find_container_id(segment) {
            return &segment[start..start + 64];
        }
        (rest, segment) = split_last(rest);
    }
    ""
}

/// Go's `path.Split` followed by trimming one `/` from the directory part.
fn split_last(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

/// A "word" byte for RE2's ASCII `\b`.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The start of the leftmost `\b[[:xdigit:]]{64}\b`: a run of word bytes exactly 64 long, all hex.
fn find_container_id(segment: &str) -> Option<usize> {
    let bytes = segment.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !is_word(bytes[i]) {
            i += 1;
            continue;
        }
        let end = bytes[i..].iter().position(|b| !is_word(*b)).map_or(bytes.len(), |n| i + n);
        if end - i == 64 && bytes[i..end].iter().all(u8::is_ascii_hexdigit) {
            return Some(i);
        }
        i = end;
    }
    None
}

/// The UID of the leftmost `\bpod<8>[-_]<4>[-_]<4>[-_]<4>[-_]<12>\b` (hex groups), as written.
fn find_pod_uid(segment: &str) -> Option<&str> {
    pod_uids(segment).next()
}

/// The UIDs of every `\bpod<8>[-_]<4>[-_]<4>[-_]<4>[-_]<12>\b` (hex groups) in `text`, left to
/// right, as written. A match never spans a `/`, so over a whole path these are its segments' pods.
fn pod_uids(text: &str) -> impl Iterator<Item = &str> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let bytes = text.as_bytes();
    let fits = move |start: usize| -> bool {
        let mut at = start;
        for (n, len) in GROUPS.iter().enumerate() {
            if n > 0 {
                if !matches!(bytes.get(at), Some(b'-' | b'_')) {
                    return false;
                }
                at += 1;
            }
            match bytes.get(at..at + len) {
                Some(group) if group.iter().all(u8::is_ascii_hexdigit) => at += len,
                _ => return false,
            }
        }
        bytes.get(at).is_none_or(|b| !is_word(*b))
    };
    (0..bytes.len()).filter_map(move |i| {
        let starts_word = i == 0 || !is_word(bytes[i - 1]);
        (starts_word && bytes[i..].starts_with(b"pod") && fits(i + 3)).then(|| &text[i + 3..i + 3 + 36])
    })
}

/// Whether two UIDs as written name the same pod: equal once the systemd driver's `_` are `-`.
fn same_pod_uid(a: &str, b: &str) -> bool {
    let canonical = |c: u8| if c == b'_' { b'-' } else { c };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| canonical(x) == canonical(y))
}

// --- the files of a process -----------------------------------------------------------------------

/// The cgroup files of one process under a `/proc` root.
#[derive(Debug, Clone, Copy)]
pub struct ProcFiles<'a> {
    /// The process.
    pub process: Process<'a>,
    /// `/proc` or `$HOST_PROC`.
    pub root: &'a ProcRoot,
    /// Log every mount and cgroup looked at (debug level).
    pub verbose: bool,
}

impl ProcFiles<'_> {
    /// `/proc/<pid>/cgroup`, `None` if it does not exist.
    pub fn cgroups(&self) -> Result<Option<String>, LocateError> {
        let path = self.root.pid_file(self.process.pid(), "cgroup").display().to_string();
        let text = read_proc_file(self.process, self.root, "cgroup")
            .map_err(|e| LocateError::Cgroups(format!("open {path}: {}", errno_text(&e))))?;
        if self.verbose
            && let Some(text) = &text
        {
            for (i, path) in parse_cgroups(text).unwrap_or_default().iter().enumerate() {
                tracing::debug!(index = i + 1, path, "PID cgroup enumerated");
            }
        }
        Ok(text)
    }

    /// The container locator over this process's `mountinfo`, then its `cgroup`.
    pub fn locate(&self, pods: Pods) -> Result<Location, LocateError> {
        let mountinfo_path = self.root.pid_file(self.process.pid(), "mountinfo").display().to_string();
        let mountinfo = read_proc_file(self.process, self.root, "mountinfo").map_err(|e| LocateError::MountInfo {
            path: mountinfo_path.clone(),
            reason: format!("open {mountinfo_path}: {}", errno_text(&e)),
        })?;
        if self.verbose
            && let Some(text) = &mountinfo
        {
            for (i, (fs_type, mount_root)) in parse_mountinfo(text).unwrap_or_default().iter().enumerate() {
                tracing::debug!(index = i + 1, r#type = fs_type, root = mount_root, "PID mount enumerated");
            }
        }
        locate_with(pods, mountinfo.as_deref(), &mountinfo_path, || self.cgroups())
    }
}

/// `<root>/<pid>/<name>` read whole, `None` if it does not exist. Bytes that are not UTF-8 (cgroup
/// names may hold any) are replaced, which cannot create a container ID or pod UID.
fn read_proc_file(process: Process<'_>, root: &ProcRoot, name: &str) -> io::Result<Option<String>> {
    match process.open(root, name) {
        Ok(file) => read_to_end_at_lossy(|buf, at| file.read_at(buf, at)).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961";
    const OTHER: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn container(text: &str) -> Result<String, LocateError> {
        locate_in_cgroups_with(Pods::Ignore, text).map(|l| l.container_id)
    }

    /// Docker's cgroupfs and systemd drivers, containerd's, on cgroup v1 and v2.
    #[test]
    fn container_ids_of_every_driver() {
        let cases = [
            (
                "v1 cgroupfs",
                format!("12:memory:/docker/{CID}\n11:cpu,cpuacct:/docker/{CID}\n1:name=systemd:/docker/{CID}\n"),
            ),
            ("v2 cgroupfs", format!("0::/docker/{CID}\n")),
            ("v2 systemd", format!("0::/system.slice/docker-{CID}.scope\n")),
            (
                "v1 systemd",
                format!("4:pids:/system.slice/docker-{CID}.scope\n1:name=systemd:/system.slice/docker-{CID}.scope\n"),
            ),
            (
                "containerd systemd",
                format!("0::/system.slice/containerd.service/kubepods-pod1.slice:cri-containerd:{CID}\n"),
            ),
            ("containerd scope", format!("0::/kubepods.slice/kubepods-besteffort.slice/cri-containerd-{CID}.scope\n")),
            ("docker init scope", format!("0::/system.slice/docker-{CID}.scope/init.scope\n")),
            ("nested parent", format!("0::/my.slice/{CID}\n")),
        ];
        for (name, text) in cases {
            assert_eq!(container(&text).unwrap(), CID, "{name}");
        }
    }

    #[test]
    fn host_processes_have_no_container() {
        for text in [
            "0::/user.slice/user-1000.slice/session-1.scope\n",
            "0::/\n",
            "12:memory:/\n1:name=systemd:/init.scope\n",
            "",
        ] {
            assert_eq!(container(text).unwrap(), "", "{text:?}");
        }
    }

    #[test]
    fn disagreements_are_refused() {
        let two = format!("4:pids:/docker/{CID}\n3:memory:/docker/{OTHER}\n");
        assert_eq!(container(&two).unwrap_err(), LocateError::ContainerIds(CID.into(), OTHER.into()));
        // As SPIRE: once a container is known, a path without one disagrees too.
        let partial = format!("4:pids:/docker/{CID}\n0::/\n");
        assert_eq!(container(&partial).unwrap_err(), LocateError::ContainerIds(CID.into(), String::new()));
        assert!(matches!(container("garbage"), Err(LocateError::Cgroups(_))));
    }

    /// Without pods, a pod UID in the path changes nothing and two pods are not an error.
    #[test]
    fn pods_are_ignored_for_docker() {
        let uid = "2c48913c-b29f-11e7-9350-020968147796";
        let text = format!("0::/kubepods/pod{uid}/x/pod00000000-1111-2222-3333-444444444444/{CID}\n");
        assert_eq!(
            locate_in_cgroups_with(Pods::Ignore, &text).unwrap(),
            Location { pod_uid: String::new(), container_id: CID.into() }
        );
        assert!(locate_in_cgroups(&text).is_err());
    }

    /// mountinfo first (its cgroup roots), then cgroup.
    #[test]
    fn mountinfo_then_cgroups() {
        let mountinfo = format!("30 25 0:26 /docker/{CID} /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n");
        let found = locate_with(Pods::Ignore, Some(&mountinfo), "m", || panic!("cgroup read")).unwrap();
        assert_eq!(found.container_id, CID);
        let namespaced = "30 25 0:26 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n";
        let cgroups = format!("0::/system.slice/docker-{CID}.scope\n");
        let found = locate_with(Pods::Ignore, Some(namespaced), "m", || Ok(Some(cgroups))).unwrap();
        assert_eq!(found.container_id, CID);
        assert_eq!(locate_with(Pods::Ignore, None, "m", || Ok(None)).unwrap(), Location::default());
    }
}
