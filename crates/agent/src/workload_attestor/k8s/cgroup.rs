//! Where a process runs in Kubernetes: its pod UID and container ID, read from the cgroup paths the
//! kernel shows for it.
//!
//! Every container runtime puts a container in a cgroup named after its 64-hex-digit ID, under one
//! named after its pod (`pod<uid>`, with `_` for `-` under the systemd driver), but the layouts differ:
//! cgroupfs v1 (`/kubepods/burstable/pod<uid>/<id>`), systemd
//! (`/kubepods.slice/.../kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope`), colon-joined
//! (`...pod<uid>.slice:cri-containerd:<id>`), kind's nested `/docker/<node>/kubepods/...`, paths
//! relative to a cgroup namespace (`/../../pod<uid>/<id>`), and CRI-O without a pod UID
//! (`/../crio-<id>.scope`). SPIRE has two ways to read them and so do we:
//!
//! - the *container locator* (SPIRE's default): the cgroup mount roots of `/proc/<pid>/mountinfo`,
//!   then the paths of `/proc/<pid>/cgroup` if those name no container, each path walked backwards
//!   for the last 64-hex segment and, before it, a `pod<uid>`. Unlike SPIRE, a path naming two
//!   different pods is refused: the layouts above name one (kind's node container adds a container
//!   ID above the pod, not a pod), so `.../pod<A>/<id>/pod<B>/<id>` is most likely a workload of pod
//!   A that can write its cgroupfs and has nested cgroups to be taken for pod B. (A kind cluster
//!   inside another cluster's pod, without cgroup namespaces, looks the same and is refused too.)
//! - the *legacy* matcher (`use_new_container_locator = false`): SPIRE's two regular expressions over
//!   the paths of `/proc/<pid>/cgroup`.
//!
//! The parsing here is pure (text in, answer out) so that it can be table-tested and fuzzed.

use std::sync::LazyLock;

use regex::Regex;

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
    if let Some(text) = mountinfo {
        let mounts = parse_mountinfo(text)
            .map_err(|reason| LocateError::MountInfo { path: mountinfo_path.to_owned(), reason })?;
        let mut found = Extractor::default();
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
        Some(text) => locate_in_cgroups(&text),
        None => Ok(Location::default()),
    }
}

/// The container locator over the paths of a `/proc/<pid>/cgroup` file.
pub fn locate_in_cgroups(text: &str) -> Result<Location, LocateError> {
    let mut found = Extractor::default();
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
}

impl Extractor {
    fn add(&mut self, path: &str) -> Result<(), LocateError> {
        let (pod_uid, container_id) = extract(path)?;
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
fn extract(path: &str) -> Result<(String, &str), LocateError> {
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

// --- the legacy matcher ---------------------------------------------------------------------------

/// SPIRE's legacy expressions. The first finds `pod<uid>` followed, after punctuation-separated
/// segments, by a 64-hex container ID ending the path; the second a CRI-O `crio-<id>` path that must
/// not hold a pod UID (KubeEdge's layout). Go's `[[:punct:]]`, `[[:xdigit:]]` and `$` mean the same
/// in the `regex` crate, and both engines pick the leftmost-first match.
static LEGACY: LazyLock<[Regex; 2]> = LazyLock::new(|| {
    const UID: &str = "[[:xdigit:]]{8}[[:punct:]]?[[:xdigit:]]{4}[[:punct:]]?[[:xdigit:]]{4}[[:punct:]]?\
                       [[:xdigit:]]{4}[[:punct:]]?[[:xdigit:]]{12}";
    [
        Regex::new(&format!(
            "[[:punct:]]pod(?P<poduid>{UID})[[:punct:]](?:[[:^punct:]]+[[:punct:]])*(?P<containerid>[[:xdigit:]]{{64}})$"
        ))
        .expect("legacy pod regex"),
        Regex::new(&format!(
            "(?P<poduid>)(?P<mustnotmatch>pod{UID}[[:punct:]])?(?:[[:^punct:]]*/*)*crio[[:punct:]](?P<containerid>[[:xdigit:]]{{64}})$"
        ))
        .expect("legacy cri-o regex"),
    ]
});

/// The legacy matcher over one cgroup path (after dropping a `.scope` suffix). `None` when no
/// expression matches, or both do (SPIRE logs that and ignores the path).
pub fn legacy_extract(path: &str) -> Option<Location> {
    let path = path.strip_suffix(".scope").unwrap_or(path);
    let mut found = None;
    for regex in LEGACY.iter() {
        let Some(caps) = regex.captures(path) else { continue };
        if caps.name("mustnotmatch").is_some_and(|m| !m.as_str().is_empty()) {
            continue;
        }
        if found.is_some() {
            tracing::warn!(cgroup = path, "More than one regex matches for cgroup");
            return None;
        }
        let pod_uid = caps.name("poduid").map_or("", |m| m.as_str());
        let container_id = caps.name("containerid").map_or("", |m| m.as_str());
        found = Some(Location { pod_uid: canonical_pod_uid(pod_uid), container_id: container_id.to_owned() });
    }
    found
}

/// The legacy matcher over the paths of a `/proc/<pid>/cgroup` file: the first container found,
/// and an error if another path names a different container or pod.
pub fn legacy_locate(text: &str) -> Result<Location, LocateError> {
    let mut found = Location::default();
    for path in parse_cgroups(text).map_err(LocateError::Cgroups)? {
        let Some(candidate) = legacy_extract(path) else { continue };
        if found.container_id.is_empty() {
            found = candidate;
        } else if found.container_id != candidate.container_id {
            return Err(LocateError::LegacyContainerIds(found.container_id, candidate.container_id));
        } else if found.pod_uid != candidate.pod_uid {
            return Err(LocateError::LegacyPodUids(found.pod_uid, candidate.pod_uid));
        }
    }
    Ok(found)
}

/// Go's `unicode.IsPunct` characters become dashes (the ASCII symbols `$+<=>^`|~` are not
/// punctuation there and stay).
fn canonical_pod_uid(uid: &str) -> String {
    uid.chars().map(|c| if c.is_ascii_punctuation() && !"$+<=>^`|~".contains(c) { '-' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "2c48913c-b29f-11e7-9350-020968147796";
    const CID: &str = "9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961";
    const TEST_UID: &str = "00000000-1111-2222-3333-444444444444";
    const TEST_CID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn testdata(name: &str) -> String {
        let path = format!("{}/src/workload_attestor/k8s/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn loc(pod_uid: &str, container_id: &str) -> Location {
        Location { pod_uid: pod_uid.to_owned(), container_id: container_id.to_owned() }
    }

    /// One path through both matchers; `legacy` is `None` where the legacy matcher finds nothing.
    #[test]
    fn every_layout() {
        let kind_node = "93529524695bb00d91c1f6dba692ea8d3550c3b94fb2463af7bc9ec82f992d26";
        let kind_uid = "a2830d0d-b0f0-4ff0-81b5-0ee4e299cf80";
        let kind_cid = "09bc3d7ade839efec32b6bec4ec79d099027a668ddba043083ec21d3c3b8f1e6";
        let crio_cid = "45490e76e0878aaa4d9808f7d2eefba37f093c3efbba9838b6d8ab804d9bd814";
        let cases: Vec<(&str, String, Location, Option<Location>)> = vec![
            ("cgroupfs, no QoS", format!("/kubepods/pod{UID}/{CID}"), loc(UID, CID), Some(loc(UID, CID))),
            ("cgroupfs, QoS", format!("/kubepods/burstable/pod{UID}/{CID}"), loc(UID, CID), Some(loc(UID, CID))),
            (
                "docker for desktop",
                format!("/kubepods/kubepods/besteffort/pod{UID}/{CID}"),
                loc(UID, CID),
                Some(loc(UID, CID)),
            ),
            (
                "kind",
                format!("/docker/{kind_node}/kubepods/besteffort/pod{kind_uid}/{kind_cid}"),
                loc(kind_uid, kind_cid),
                Some(loc(kind_uid, kind_cid)),
            ),
            (
                "systemd, docker",
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID}.slice/docker-{CID}.scope"
                ),
                loc(UID, CID),
                Some(loc(UID, CID)),
            ),
            (
                "systemd, containerd, underscores",
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CID}.scope",
                    UID.replace('-', "_")
                ),
                loc(UID, CID),
                Some(loc(UID, CID)),
            ),
            (
                "systemd, CRI-O",
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/crio-{kind_cid}.scope",
                    kind_uid.replace('-', "_")
                ),
                loc(kind_uid, kind_cid),
                Some(loc(kind_uid, kind_cid)),
            ),
            (
                "colon-joined cri-containerd",
                "/kubepods-besteffort-pod72f7f152_440c_66ac_9084_e0fc1d8a910c.slice:cri-containerd:b2a102854b4969b2ce98dc329c86b4fb2b06e4ad2cc8da9d8a7578c9cd2004a2".to_owned(),
                loc("72f7f152-440c-66ac-9084-e0fc1d8a910c", "b2a102854b4969b2ce98dc329c86b4fb2b06e4ad2cc8da9d8a7578c9cd2004a2"),
                Some(loc("72f7f152-440c-66ac-9084-e0fc1d8a910c", "b2a102854b4969b2ce98dc329c86b4fb2b06e4ad2cc8da9d8a7578c9cd2004a2")),
            ),
            (
                "another cgroup namespace",
                format!("/../../../burstable/pod{UID}/{CID}"),
                loc(UID, CID),
                Some(loc(UID, CID)),
            ),
            (
                "cgroup v2 mount root in a namespace",
                format!(
                    "/../../kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{}.slice/cri-containerd-{TEST_CID}.scope",
                    TEST_UID.replace('-', "_")
                ),
                loc(TEST_UID, TEST_CID),
                Some(loc(TEST_UID, TEST_CID)),
            ),
            ("not under kubepods", format!("/something/pod{kind_uid}/{kind_cid}"), loc(kind_uid, kind_cid), Some(loc(kind_uid, kind_cid))),
            ("pod and container only", format!("/pod{kind_uid}/{kind_cid}"), loc(kind_uid, kind_cid), Some(loc(kind_uid, kind_cid))),
            ("CRI-O without a pod (KubeEdge)", format!("/../crio-{crio_cid}.scope"), loc("", crio_cid), Some(loc("", crio_cid))),
            ("container alone", format!("/{kind_cid}"), loc("", kind_cid), None),
            ("no pod segment", format!("/kubepods/{kind_cid}"), loc("", kind_cid), None),
            ("plain docker", format!("/system.slice/docker-{kind_cid}.scope"), loc("", kind_cid), None),
            ("no container", format!("/kubepods/pod{kind_uid}"), loc("", ""), None),
            ("a user session", "/user.slice/user-1000.slice/session-2.scope".to_owned(), loc("", ""), None),
            ("the root", "/".to_owned(), loc("", ""), None),
            ("65 hex digits", format!("/kubepods/pod{UID}/{CID}0"), loc("", ""), None),
            // `_` is a word character for the locator, punctuation for the legacy expression.
            ("an underscore glued to the ID", format!("/kubepods/pod{UID}/x_{CID}"), loc("", ""), Some(loc(UID, CID))),
            ("a trailing slash ends the walk", format!("/kubepods/pod{UID}/{CID}/"), loc("", ""), None),
            (
                "a segment after the container",
                format!("/kubepods/pod{UID}/{CID}/init"),
                loc(UID, CID),
                None,
            ),
            (
                "a double slash stops the pod search",
                format!("/kubepods/pod{UID}//{CID}"),
                loc("", CID),
                None,
            ),
        ];
        for (name, path, want, want_legacy) in cases {
            let (pod_uid, container_id) = extract(&path).unwrap_or_else(|e| panic!("{name}: {path}: {e}"));
            assert_eq!(loc(&pod_uid, container_id), want, "{name}: {path}");
            assert_eq!(legacy_extract(&path), want_legacy, "{name} (legacy): {path}");
        }
    }

    #[test]
    fn spire_cgroup_fixtures() {
        let init_uid = "d488cae9-b2a0-11e7-9350-020968147796";
        let init_cid = "34a2062fd26c805aa8cf814cdfe479322b791f80afb9ea4db02d50375df14b41";
        let kind = loc(
            "a2830d0d-b0f0-4ff0-81b5-0ee4e299cf80",
            "09bc3d7ade839efec32b6bec4ec79d099027a668ddba043083ec21d3c3b8f1e6",
        );
        let cases = [
            ("cgroups_pid_in_pod.txt", loc(UID, CID)),
            ("cgroups_init_pid_in_pod.txt", loc(init_uid, init_cid)),
            ("cgroups_pid_in_kind_pod.txt", kind.clone()),
            ("cgroups_pid_in_crio_pod.txt", loc("", &kind.container_id)),
            ("cgroups_pid_not_in_pod.txt", Location::default()),
            ("systemd_cgroups_pid_in_pod.txt", loc(UID, CID)),
            ("systemd_crio_cgroups_pid_in_pod.txt", kind.clone()),
        ];
        for (file, want) in cases.clone() {
            let text = testdata(file);
            assert_eq!(locate_in_cgroups(&text).unwrap(), want, "{file}");
            // Through `locate` without a mountinfo file, as SPIRE's plugin tests run it.
            assert_eq!(locate(None, "", || Ok(Some(text.clone()))).unwrap(), want, "{file}");
        }
        for (file, want) in cases {
            assert_eq!(legacy_locate(&testdata(file)).unwrap(), want, "{file} (legacy)");
        }
    }

    #[test]
    fn conflicts_are_errors() {
        let other_cid = "a55d9ac3b312d8a2627824b6d6dd8af66fbec439bf4e0ec22d6d9945ad337a38";
        let text =
            format!("1:a:/user.slice\n2:b:/kubepods/pod{UID}/{CID}\n3:c:/kubepods/besteffort/pod{UID}/{other_cid}\n");
        assert_eq!(
            legacy_locate(&text).unwrap_err().to_string(),
            format!("multiple container IDs found in cgroups ({CID}, {other_cid})")
        );
        assert_eq!(
            locate_in_cgroups(&text).unwrap_err().to_string(),
            format!("multiple container IDs found (\"{CID}\", \"{other_cid}\")")
        );
        let uid1 = "11111111-b29f-11e7-9350-020968147796";
        let uid2 = "22222222-b29f-11e7-9350-020968147796";
        let text =
            format!("1:a:/user.slice\n2:b:/kubepods/pod{uid1}/{CID}\n3:c:/kubepods/besteffort/pod{uid2}/{CID}\n");
        assert_eq!(
            legacy_locate(&text).unwrap_err().to_string(),
            format!("multiple pod UIDs found in cgroups ({uid1}, {uid2})")
        );
        assert_eq!(
            locate_in_cgroups(&text).unwrap_err().to_string(),
            format!("multiple pod UIDs found (\"{uid1}\", \"{uid2}\")")
        );
        // Legacy: the canonical form is compared, so `_` and `-` spellings agree.
        let text = format!("1:a:/kubepods/pod{UID}/{CID}\n2:b:/kubepods/pod{}/{CID}\n", UID.replace('-', "_"));
        assert_eq!(legacy_locate(&text).unwrap(), loc(UID, CID));
        assert_eq!(locate_in_cgroups(&text).unwrap(), loc(UID, CID));
    }

    /// Defence in depth: a workload that can write its cgroupfs (and hide its cgroup mount) could
    /// nest another pod's `pod<uid>/<id>` under its own; SPIRE would take the inner pair.
    #[test]
    fn a_path_naming_two_pods_is_refused() {
        let uid_b = "11111111-2222-3333-4444-555555555555";
        let cid_b = "a55d9ac3b312d8a2627824b6d6dd8af66fbec439bf4e0ec22d6d9945ad337a38";
        let (us, us_b) = (UID.replace('-', "_"), uid_b.replace('-', "_"));
        let refused = [
            ("cgroupfs", format!("/kubepods/burstable/pod{UID}/{CID}/pod{uid_b}/{cid_b}")),
            ("cgroupfs, inner without QoS", format!("/kubepods/pod{UID}/{CID}/kubepods/besteffort/pod{uid_b}/{cid_b}")),
            (
                "systemd",
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{us}.slice/cri-containerd-{CID}.scope\
                     /kubepods-burstable-pod{us_b}.slice/cri-containerd-{cid_b}.scope"
                ),
            ),
            ("mixed spellings", format!("/kubepods/pod{us}/{CID}/pod{uid_b}/{cid_b}")),
            ("in a namespace", format!("/../../pod{UID}/{CID}/pod{uid_b}/{cid_b}")),
            ("the other pod after the container", format!("/kubepods/pod{UID}/{CID}/pod{uid_b}")),
            ("two pods in one segment", format!("/kubepods/pod{UID}.pod{uid_b}/{cid_b}")),
            ("two pods, no container", format!("/kubepods/pod{UID}/pod{uid_b}")),
            ("kind, nested", format!("/docker/{cid_b}/kubepods/besteffort/pod{UID}/{CID}/kubepods/pod{uid_b}/{cid_b}")),
        ];
        for (name, path) in refused {
            let want = LocateError::NestedPodUids { path: path.clone(), first: UID.into(), second: uid_b.into() };
            assert_eq!(extract(&path), Err(want.clone()), "{name}: {path}");
            assert_eq!(
                want.to_string(),
                format!("multiple pod UIDs found in cgroup path {path:?} (\"{UID}\", \"{uid_b}\")")
            );
            // Whichever file it comes from, in whatever line: no location, hence no selectors.
            let cgroups = format!("12:pids:/user.slice\n11:memory:{path}\n0::/\n");
            assert_eq!(locate_in_cgroups(&cgroups), Err(want.clone()), "{name}");
            assert_eq!(locate(None, "", || Ok(Some(cgroups.clone()))), Err(want.clone()), "{name}");
            let mountinfo = format!("30 25 0:26 {path} /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n");
            assert_eq!(locate(Some(&mountinfo), "", || panic!("cgroup read")), Err(want), "{name}");
        }
        // One pod named twice (the same UID in either spelling) is one pod: kind's node container
        // and the systemd driver's slices, across cgroup v1 lines repeating one path.
        let kind_node = "93529524695bb00d91c1f6dba692ea8d3550c3b94fb2463af7bc9ec82f992d26";
        let allowed = [
            format!("/docker/{kind_node}/kubepods/besteffort/pod{UID}/{CID}"),
            format!("/kubepods/pod{UID}/pod{us}/{CID}"),
            format!("/kubepods.slice/kubepods-pod{us}.slice/pod{UID}/cri-containerd-{CID}.scope"),
            format!("/kubepods/pod{UID}/{CID}/pod{UID}"),
        ];
        for path in allowed {
            assert_eq!(extract(&path).map(|(uid, cid)| loc(&uid, cid)), Ok(loc(UID, CID)), "{path}");
            let cgroups = format!("3:cpu:{path}\n2:memory:{path}\n1:pids:{path}\n");
            assert_eq!(locate_in_cgroups(&cgroups), Ok(loc(UID, CID)), "{path}");
        }
        // The legacy matcher (SPIRE's expressions, unchanged) takes the outer pod, the workload's
        // own, with the inner container, which that pod does not have: nothing is gained there.
        let path = format!("/kubepods/pod{UID}/{CID}/pod{uid_b}/{cid_b}");
        assert_eq!(legacy_extract(&path), Some(loc(UID, cid_b)));
    }

    #[test]
    fn malformed_cgroup_files() {
        let err = locate_in_cgroups("0::/\nnonsense\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to obtain cgroups: invalid cgroup entry, contains 1 colon separated fields but expected at least 3: \"nonsense\""
        );
        assert!(legacy_locate("1:cpu\n").is_err());
        assert_eq!(locate_in_cgroups("").unwrap(), Location::default());
    }

    /// SPIRE's `containerinfo` cases, with its mountinfo fixtures.
    #[test]
    fn mountinfo_first_then_cgroup() {
        let run = |dir: &str, cgroup: Option<&str>| {
            let mountinfo = testdata(&format!("containerinfo/{dir}/mountinfo"));
            locate(Some(&mountinfo), "/proc/123/mountinfo", || Ok(cgroup.map(str::to_owned)))
        };
        assert_eq!(run("k8s-v1", None).unwrap(), loc(TEST_UID, TEST_CID));
        assert_eq!(run("k8s-v2", None).unwrap(), loc(TEST_UID, TEST_CID));
        assert_eq!(run("k8s-no-cgroup-mount", None).unwrap(), Location::default());
        assert_eq!(run("other-malformed", None).unwrap(), Location::default());
        assert_eq!(run("k8s-pod-uid-override", None).unwrap(), loc(TEST_UID, TEST_CID));
        assert!(run("k8s-pod-uid-conflict", None).unwrap_err().to_string().contains("multiple pod UIDs found"));
        assert!(
            run("k8s-container-id-conflict", None).unwrap_err().to_string().contains("multiple container IDs found")
        );
        let fallback = testdata("containerinfo/other-fallback/cgroup");
        assert_eq!(run("other-fallback", Some(&fallback)).unwrap(), loc("", TEST_CID));
        // No mountinfo at all: straight to the cgroup file; neither file: not in a container.
        assert_eq!(locate(None, "", || Ok(Some(fallback.clone()))).unwrap(), loc("", TEST_CID));
        assert_eq!(locate(None, "", || Ok(None)).unwrap(), Location::default());
        // The cgroup file is not read when the mounts answer.
        let mountinfo = testdata("containerinfo/k8s-v2/mountinfo");
        let found = locate(Some(&mountinfo), "", || panic!("cgroup read")).unwrap();
        assert_eq!(found, loc(TEST_UID, TEST_CID));
    }

    #[test]
    fn malformed_mountinfo() {
        let cases = [
            (
                "1 2 0:3 / /x rw - cgroup2",
                "wrong number of fields in (expected at least 10, got 8): 1 2 0:3 / /x rw - cgroup2",
            ),
            ("a 2 0:3 / /x rw shared:1 - cgroup2 cgroup rw", "strconv.Atoi: parsing \"a\": invalid syntax"),
            (
                "1 2 03 / /x rw shared:1 - cgroup2 cgroup rw",
                "parsing '1 2 03 / /x rw shared:1 - cgroup2 cgroup rw' failed: unexpected minor:major pair [03]",
            ),
            (
                "1 2 0:x / /x rw a b c d",
                "parsing 'x' failed: unable to parse minor device id, err:strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            ("1 2 0:3 / /x rw a b - c d", "expect 3 fields in 1 2 0:3 / /x rw a b - c d, got 2"),
            ("1 2 0:3 / /x rw a b c d", "expect 3 fields in 1 2 0:3 / /x rw a b c d, got -1"),
        ];
        for (line, want) in cases {
            let err = locate(Some(line), "/proc/1/mountinfo", || Ok(None)).unwrap_err();
            assert_eq!(err, LocateError::MountInfo { path: "/proc/1/mountinfo".into(), reason: want.into() }, "{line}");
            assert_eq!(err.to_string(), format!("failed to parse mount info at \"/proc/1/mountinfo\": {want}"));
        }
    }

    #[test]
    fn legacy_pod_uid_canonical_form() {
        assert_eq!(canonical_pod_uid("2c48913c_b29f.11e7:9350-020968147796"), UID);
        assert_eq!(canonical_pod_uid("2c48913c+b29f"), "2c48913c+b29f");
        // A CRI-O path that does hold a pod UID is the first expression's, not the second's.
        let path = format!("/kubepods/pod{UID}/crio-{CID}.scope");
        assert_eq!(legacy_extract(&path), Some(loc(UID, CID)));
    }
}
