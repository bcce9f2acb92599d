//! Workload attestation against real processes: the test process, children running as other users,
//! processes that exit, and callers on a real Unix socket.
//!
//! Tests that need another uid run only as root (they say so and pass otherwise); children are
//! spawned through `setpriv` when they need supplementary groups, since std cannot set those without
//! `unsafe` `pre_exec`, which this workspace forbids.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nix::unistd::{Gid, Group, Uid, User};
use spire_agent::peer::{PeerCredentials, PeerError, PeerTracker, Process, TrackedUnixStream};
use spire_agent::workload_attestor::{AttestError, UnixAttestor, UnixConfig, WorkloadAttestor, WorkloadAttestors};
use spire_identity::{Selector, SelectorSet};
use tokio::net::UnixListener;
use tokio::sync::Barrier;
use tonic::transport::server::Connected;

/// Environment variable telling [`socket_client_helper`] which socket to connect to.
const HELPER_SOCKET_ENV: &str = "SPIRE_AGENT_TEST_CONNECT";

/// A child process, killed and reaped when dropped so no test leaves one behind.
struct Proc(Child);

impl Proc {
    fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).unwrap()
    }

    /// Kills and reaps the process, so its PID is free.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn own_pid() -> i32 {
    i32::try_from(std::process::id()).unwrap()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The sleep binary as `/proc/<pid>/exe` names it (symlinks such as a merged `/bin` resolved).
fn sleep_path() -> PathBuf {
    let path = if Path::new("/usr/bin/sleep").exists() { "/usr/bin/sleep" } else { "/bin/sleep" };
    std::fs::canonicalize(path).unwrap()
}

fn quiet(command: &mut Command) -> &mut Command {
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null())
}

fn spawn_sleep() -> Proc {
    // std's spawn returns once exec has succeeded, so /proc/<pid>/exe is already sleep.
    Proc(quiet(&mut Command::new(sleep_path())).arg("30").spawn().unwrap())
}

/// `sleep 30` as another user with supplementary groups, or `None` (test skipped) when not root or
/// without `setpriv`.
fn spawn_sleep_as(uid: u32, gid: u32, groups: &[u32]) -> Option<Proc> {
    if !is_root() {
        eprintln!("skipped: needs root to run a process as another user");
        return None;
    }
    let groups = groups.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    let child = quiet(&mut Command::new("setpriv"))
        .args([format!("--reuid={uid}"), format!("--regid={gid}"), format!("--groups={groups}")])
        .arg("--")
        .arg(sleep_path())
        .arg("30")
        .spawn();
    let child = match child {
        Ok(child) => Proc(child),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: setpriv (util-linux) is not installed");
            return None;
        }
        Err(err) => panic!("setpriv: {err}"),
    };
    // setpriv changes credentials and then execs sleep: wait for the exec.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_link(format!("/proc/{}/exe", child.pid())).ok().as_deref() != Some(&sleep_path()) {
        assert!(Instant::now() < deadline, "setpriv did not exec sleep");
        std::thread::sleep(Duration::from_millis(10));
    }
    Some(child)
}

/// SHA-256 by an independent implementation: coreutils' sha256sum.
fn sha256sum(path: &Path) -> String {
    let output = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().split_whitespace().next().unwrap().to_owned()
}

fn unix(value: impl Into<String>) -> Selector {
    Selector::new("unix", value).unwrap()
}

fn values_with_prefix<'a>(values: &'a [String], prefix: &str) -> BTreeSet<&'a str> {
    values.iter().filter_map(|v| v.strip_prefix(prefix)).collect()
}

fn with_path(limit: i64) -> UnixAttestor {
    UnixAttestor::new(UnixConfig { discover_workload_path: true, workload_size_limit: limit })
}

fn user_name(uid: u32) -> Option<String> {
    User::from_uid(Uid::from_raw(uid)).unwrap().map(|u| u.name)
}

fn group_name(gid: u32) -> Option<String> {
    Group::from_gid(Gid::from_raw(gid)).unwrap().map(|g| g.name)
}

#[tokio::test]
async fn attests_the_test_process_itself() {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let values = UnixAttestor::new(UnixConfig::default()).attest(Process::from_pid(own_pid())).await.unwrap();

    assert_eq!(values[0], format!("uid:{uid}"));
    assert_eq!(values_with_prefix(&values, "uid:"), BTreeSet::from([uid.to_string().as_str()]));
    assert_eq!(values_with_prefix(&values, "gid:"), BTreeSet::from([gid.to_string().as_str()]));
    let user = user_name(uid);
    assert_eq!(values_with_prefix(&values, "user:"), user.iter().map(String::as_str).collect());
    let group = group_name(gid);
    assert_eq!(values_with_prefix(&values, "group:"), group.iter().map(String::as_str).collect());

    let groups: Vec<String> = nix::unistd::getgroups().unwrap().iter().map(|g| g.as_raw().to_string()).collect();
    assert_eq!(values_with_prefix(&values, "supplementary_gid:"), groups.iter().map(String::as_str).collect());
    // Without discover_workload_path the executable is not looked at.
    assert!(values.iter().all(|v| !v.starts_with("path:") && !v.starts_with("sha256:")), "{values:?}");

    // Through the host, the plugin name becomes the selector type.
    let set = WorkloadAttestors::new([Arc::new(UnixAttestor::new(UnixConfig::default())) as Arc<dyn WorkloadAttestor>])
        .attest_pid(own_pid())
        .await
        .unwrap();
    assert!(set.contains(&unix(format!("uid:{uid}"))));
    assert!(set.contains(&unix(format!("gid:{gid}"))));
    if let Some(user) = user {
        assert!(set.contains(&unix(format!("user:{user}"))));
    }
    assert!(set.iter().all(|s| s.kind == "unix"));
}

#[tokio::test]
async fn attests_another_user_with_supplementary_groups_and_its_executable() {
    let (uid, gid) = (4321, 4322);
    let Some(child) = spawn_sleep_as(uid, gid, &[0, 4323]) else { return };
    let values = with_path(0).attest(Process::from_pid(child.pid())).await.unwrap();

    let mut expected = vec![format!("uid:{uid}")];
    expected.extend(user_name(uid).map(|name| format!("user:{name}")));
    expected.push(format!("gid:{gid}"));
    expected.extend(group_name(gid).map(|name| format!("group:{name}")));
    expected.push("supplementary_gid:0".to_owned());
    expected.extend(group_name(0).map(|name| format!("supplementary_group:{name}")));
    expected.push("supplementary_gid:4323".to_owned());
    expected.extend(group_name(4323).map(|name| format!("supplementary_group:{name}")));
    expected.push(format!("path:{}", sleep_path().display()));
    expected.push(format!("sha256:{}", sha256sum(&sleep_path())));
    expected.push(format!("pid:{}", child.pid()));
    // SPIRE's order, value for value.
    assert_eq!(values, expected);
    assert!(values.iter().any(|v| v.starts_with("supplementary_group:")), "gid 0 has a name: {values:?}");
}

#[tokio::test]
async fn effective_ids_win_over_real_ones() {
    if !is_root() {
        eprintln!("skipped: needs root to run a process as another user");
        return;
    }
    // setpriv --euid/--egid leave the real IDs at 0; SPIRE attests the effective ones.
    let child = quiet(&mut Command::new("setpriv"))
        .args(["--euid=4401", "--egid=4402", "--clear-groups", "--"])
        .arg(sleep_path())
        .arg("30")
        .spawn();
    let Ok(child) = child.map(Proc) else {
        eprintln!("skipped: setpriv (util-linux) is not installed");
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_link(format!("/proc/{}/exe", child.pid())).ok().as_deref() != Some(&sleep_path()) {
        assert!(Instant::now() < deadline, "setpriv did not exec sleep");
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(uid_line.split_whitespace().take(3).collect::<Vec<_>>(), ["Uid:", "0", "4401"], "{status}");
    let values = UnixAttestor::new(UnixConfig::default()).attest(Process::from_pid(child.pid())).await.unwrap();
    assert!(values.contains(&"uid:4401".to_owned()) && values.contains(&"gid:4402".to_owned()), "{values:?}");
    assert!(!values.contains(&"uid:0".to_owned()), "{values:?}");
}

#[tokio::test]
async fn workload_size_limit_bounds_hashing() {
    let child = spawn_sleep();
    let size = std::fs::metadata(sleep_path()).unwrap().len();
    let size = i64::try_from(size).unwrap();
    let digest = format!("sha256:{}", sha256sum(&sleep_path()));

    // At the limit is fine; only larger is refused.
    assert!(with_path(size).attest(Process::from_pid(child.pid())).await.unwrap().contains(&digest));

    let err = with_path(size - 1).attest(Process::from_pid(child.pid())).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("SHA256 digest: workload /proc/{}/exe exceeds size limit ({size} > {})", child.pid(), size - 1)
    );

    // A negative limit never hashes, but the path is still attested.
    let values = with_path(-1).attest(Process::from_pid(child.pid())).await.unwrap();
    assert!(values.contains(&format!("path:{}", sleep_path().display())), "{values:?}");
    assert!(values.iter().all(|v| !v.starts_with("sha256:")), "{values:?}");
}

/// Runs a just-written executable. Another test thread's fork can briefly hold the copy's write
/// descriptor, which makes exec fail with "text file busy" until that child execs in turn.
fn spawn_retrying_text_busy(command: &mut Command) -> Proc {
    const ETXTBSY: i32 = 26;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match quiet(command).spawn() {
            Ok(child) => return Proc(child),
            Err(err) if err.raw_os_error() == Some(ETXTBSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(err) => panic!("spawning the copy: {err}"),
        }
    }
}

#[tokio::test]
async fn the_executable_is_hashed_through_the_process_not_the_path() {
    // Run a copy, then replace the copy on disk: the digest must still be of what runs.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("workload");
    std::fs::copy(sleep_path(), &copy).unwrap();
    let original = format!("sha256:{}", sha256sum(&copy));
    let child = spawn_retrying_text_busy(Command::new(&copy).arg("30"));
    std::fs::remove_file(&copy).unwrap();
    std::fs::write(&copy, b"#!/bin/sh\nexit 0\n").unwrap();

    let values = with_path(0).attest(Process::from_pid(child.pid())).await.unwrap();
    assert!(values.contains(&original), "{values:?}");
    // The link names the file that ran, which the kernel marks as deleted.
    let path = values.iter().find_map(|v| v.strip_prefix("path:")).unwrap();
    assert!(path.starts_with(copy.to_str().unwrap()), "{path}");
}

#[tokio::test]
async fn a_process_that_exited_is_not_attested() {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    child.wait().unwrap();

    let err = UnixAttestor::new(UnixConfig::default()).attest(Process::from_pid(pid)).await.unwrap_err();
    assert!(err.to_string().starts_with("failed to get process: "), "{err}");

    let attestors = WorkloadAttestors::new([Arc::new(with_path(0)) as Arc<dyn WorkloadAttestor>]);
    let err = attestors.attest_pid(pid).await.unwrap_err();
    assert!(matches!(&err, AttestError::AllFailed(failures) if failures.len() == 1), "{err}");
    assert!(err.to_string().contains("workload attestor \"unix\" failed: failed to get process: "), "{err}");
}

#[test]
fn watcher_reports_a_killed_process_gone() {
    let mut child = spawn_sleep();
    let watcher = PeerTracker::new().watch(child.pid()).unwrap();
    assert_eq!(watcher.pid(), child.pid());
    assert!(watcher.is_alive());

    // Killed but not reaped: a zombie still holds its PID and /proc entry; its pidfd says it exited.
    let _ = child.0.kill();
    if watcher.has_pidfd() {
        let deadline = Instant::now() + Duration::from_secs(10);
        while watcher.is_alive() {
            assert!(Instant::now() < deadline, "pidfd never reported the exit");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(matches!(watcher.check(), Err(PeerError::Exited)));
    }

    child.kill();
    assert!(!watcher.is_alive());
    assert!(PeerTracker::new().watch(child.pid()).is_err(), "a reaped PID cannot be watched");
}

/// A plugin with a fixed answer that can wait for its peers, to show they run at the same time.
struct Fixed {
    name: &'static str,
    result: Result<Vec<&'static str>, &'static str>,
    barrier: Option<Arc<Barrier>>,
}

#[async_trait]
impl WorkloadAttestor for Fixed {
    fn name(&self) -> &str {
        self.name
    }

    async fn attest(&self, _process: Process<'_>) -> Result<Vec<String>, AttestError> {
        if let Some(barrier) = &self.barrier {
            barrier.wait().await;
        }
        match &self.result {
            Ok(values) => Ok(values.iter().map(|v| (*v).to_owned()).collect()),
            Err(message) => Err(AttestError::plugin(*message)),
        }
    }
}

fn fixed(name: &'static str, result: Result<Vec<&'static str>, &'static str>) -> Arc<dyn WorkloadAttestor> {
    Arc::new(Fixed { name, result, barrier: None })
}

#[tokio::test]
async fn attestors_run_in_parallel_and_their_selectors_combine() {
    // Each plugin waits until all three have started: only parallel runs can finish.
    let barrier = Arc::new(Barrier::new(3));
    let attestors = WorkloadAttestors::new([
        Arc::new(Fixed { name: "a", result: Ok(vec!["x", "shared"]), barrier: Some(barrier.clone()) })
            as Arc<dyn WorkloadAttestor>,
        Arc::new(Fixed { name: "b", result: Ok(vec!["y:z", "shared"]), barrier: Some(barrier.clone()) }),
        Arc::new(Fixed { name: "c", result: Err("boom"), barrier: Some(barrier) }),
        Arc::new(UnixAttestor::new(UnixConfig::default())),
    ]);
    assert_eq!(attestors.names().collect::<Vec<_>>(), ["a", "b", "c", "unix"]);

    let set = tokio::time::timeout(Duration::from_secs(10), attestors.attest_pid(own_pid()))
        .await
        .expect("attestors did not run in parallel")
        .unwrap();
    for selector in ["a:x", "a:shared", "b:y:z", "b:shared"] {
        assert!(set.contains(&Selector::parse(selector).unwrap()), "{selector} missing from {set:?}");
    }
    let uid = nix::unistd::geteuid().as_raw();
    assert!(set.contains(&unix(format!("uid:{uid}"))));
    // The failing plugin contributes nothing, and types never mix.
    assert!(set.iter().all(|s| ["a", "b", "unix"].contains(&s.kind.as_str())), "{set:?}");
}

#[tokio::test]
async fn one_failing_attestor_does_not_fail_the_others() {
    let attestors = WorkloadAttestors::new([fixed("broken", Err("no such thing")), fixed("ok", Ok(vec!["v"]))]);
    let set = attestors.attest_pid(own_pid()).await.unwrap();
    assert_eq!(set, SelectorSet::from_iter([Selector::parse("ok:v").unwrap()]));

    // A plugin that succeeds with nothing to say is still a success.
    let attestors = WorkloadAttestors::new([fixed("broken", Err("no")), fixed("quiet", Ok(vec![]))]);
    assert!(attestors.attest_pid(own_pid()).await.unwrap().is_empty());
}

#[tokio::test]
async fn all_attestors_failing_is_an_error() {
    let attestors = WorkloadAttestors::new([
        fixed("first", Err("first failure")),
        fixed("second", Err("second failure")),
        // An empty value makes no selector: that plugin counts as failed.
        fixed("third", Ok(vec!["fine", ""])),
    ]);
    let err = attestors.attest_pid(own_pid()).await.unwrap_err();
    let AttestError::AllFailed(failures) = &err else { panic!("{err}") };
    let mut names: Vec<_> = failures.iter().map(|f| f.attestor.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["first", "second", "third"]);
    let message = err.to_string();
    assert!(message.starts_with("all workload attestors failed: "), "{message}");
    assert!(message.contains("workload attestor \"first\" failed: first failure"), "{message}");
    assert!(message.contains("workload attestor \"second\" failed: second failure"), "{message}");

    // No plugins at all is not a failure: nothing is attested.
    assert!(WorkloadAttestors::default().attest_pid(own_pid()).await.unwrap().is_empty());
}

/// A plugin that kills the caller while attesting it, as if it exited and its PID could be reused.
struct KillsCaller(Mutex<Option<Proc>>);

#[async_trait]
impl WorkloadAttestor for KillsCaller {
    fn name(&self) -> &str {
        "killer"
    }

    async fn attest(&self, _process: Process<'_>) -> Result<Vec<String>, AttestError> {
        if let Some(mut child) = self.0.lock().unwrap().take() {
            child.kill();
        }
        Ok(vec!["attested".to_owned()])
    }
}

#[tokio::test]
async fn a_caller_that_exits_during_attestation_is_refused() {
    let child = spawn_sleep();
    let watcher = PeerTracker::new().watch(child.pid()).unwrap();
    let attestors =
        WorkloadAttestors::new([Arc::new(KillsCaller(Mutex::new(Some(child)))) as Arc<dyn WorkloadAttestor>]);

    let err = attestors.attest(&watcher).await.unwrap_err();
    assert!(matches!(err, AttestError::CallerChanged(_)), "{err}");
    assert!(err.to_string().starts_with("could not verify existence of the original caller: "), "{err}");
}

#[tokio::test]
async fn a_live_caller_is_attested_through_its_watcher() {
    let child = spawn_sleep();
    let watcher = PeerTracker::new().watch(child.pid()).unwrap();
    let attestors = WorkloadAttestors::new([Arc::new(with_path(0)) as Arc<dyn WorkloadAttestor>]);
    let set = attestors.attest(&watcher).await.unwrap();
    assert!(set.contains(&unix(format!("path:{}", sleep_path().display()))), "{set:?}");
}

/// Run in a child process by the socket tests: connects to the socket named by the environment and
/// stays until the server closes the connection.
#[test]
#[ignore = "helper: run in a child process by the Unix socket tests"]
fn socket_client_helper() {
    let Some(path) = std::env::var_os(HELPER_SOCKET_ENV) else { return };
    let mut stream = std::os::unix::net::UnixStream::connect(path).unwrap();
    let _ = stream.read(&mut [0u8; 1]);
}

/// Starts this test binary's [`socket_client_helper`] against `socket`, optionally as `uid`/`gid`.
fn spawn_socket_client(socket: &Path, ids: Option<(u32, u32)>) -> std::io::Result<Proc> {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", "socket_client_helper", "--ignored", "--quiet", "--test-threads=1"]);
    command.env(HELPER_SOCKET_ENV, socket);
    if let Some((uid, gid)) = ids {
        command.uid(uid).gid(gid);
    }
    quiet(&mut command).spawn().map(Proc)
}

/// A listening socket in a fresh directory that any user may connect to.
fn listen() -> (tempfile::TempDir, PathBuf, UnixListener) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("api.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    (dir, path, listener)
}

async fn accept(listener: &UnixListener) -> tokio::net::UnixStream {
    let (stream, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
        .await
        .expect("client never connected")
        .unwrap();
    stream
}

/// The server side of the Workload API: accept, pin the caller down, attest it, check it again.
async fn attest_socket_peer(ids: Option<(u32, u32)>) {
    let (_dir, path, listener) = listen();
    let mut child = match spawn_socket_client(&path, ids) {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("skipped: the test binary is not executable by uid {ids:?}");
            return;
        }
        Err(err) => panic!("spawning the client: {err}"),
    };
    let stream = accept(&listener).await;

    let creds = PeerCredentials::from_stream(&stream).unwrap();
    assert_eq!(creds.pid, child.pid());
    let (uid, gid) = ids.unwrap_or((nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw()));
    assert_eq!((creds.uid, creds.gid), (uid, gid));

    let tracked = TrackedUnixStream::new(stream, &PeerTracker::new()).unwrap();
    let peer = tracked.connect_info();
    assert_eq!(peer.pid(), child.pid());
    assert_eq!(peer.credentials(), creds);

    let attestors = WorkloadAttestors::new([Arc::new(with_path(0)) as Arc<dyn WorkloadAttestor>]);
    let set = attestors.attest(peer.watcher()).await.unwrap();
    assert!(set.contains(&unix(format!("uid:{uid}"))), "{set:?}");
    assert!(set.contains(&unix(format!("gid:{gid}"))), "{set:?}");
    let exe = std::fs::canonicalize(std::env::current_exe().unwrap()).unwrap();
    assert!(set.contains(&unix(format!("path:{}", exe.display()))), "{set:?}");

    // Once the caller is gone, its connection no longer vouches for anyone.
    child.kill();
    assert!(!peer.watcher().is_alive());
    assert!(attestors.attest(peer.watcher()).await.is_err());
}

#[tokio::test]
async fn the_peer_of_a_unix_socket_is_attested() {
    attest_socket_peer(None).await;
}

#[tokio::test]
async fn the_peer_of_a_unix_socket_is_attested_as_another_user() {
    if !is_root() {
        eprintln!("skipped: needs root to run a process as another user");
        return;
    }
    attest_socket_peer(Some((65534, 65534))).await;
}

#[tokio::test]
async fn a_peer_gone_before_accept_cannot_be_watched() {
    let (_dir, path, listener) = listen();
    let mut child = spawn_socket_client(&path, None).unwrap();
    let stream = accept(&listener).await;
    child.kill();

    // The socket still reports the PID it recorded at connect time, but there is no process to attest.
    assert_eq!(PeerCredentials::from_stream(&stream).unwrap().pid, child.pid());
    let err = TrackedUnixStream::new(stream, &PeerTracker::new()).unwrap_err();
    assert!(matches!(err, PeerError::Exited | PeerError::OpenProc(_)), "{err}");
}
