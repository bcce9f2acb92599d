//! A real systemd, PID 1 of its own PID, mount, UTS and cgroup namespaces, for tests on a machine
//! whose PID 1 is not systemd (this one's is the VM's init; CI runs here too).
//!
//! Debian's `/lib/systemd/systemd --system` boots into a test target whose units all have
//! `DefaultDependencies=no`: only D-Bus (Debian's `dbus-daemon`, socket-activated as on a real
//! host) and the units a test starts run; none of `sysinit.target` (no tmpfiles, sysctl, udev or
//! journald). Inside the mount namespace every file system of the host is read-only (`/sys` and
//! `/proc/sys` too), but for the test's own directory and `/dev`; `/run`, `/var/tmp`, `/proc` and
//! the cgroup hierarchies are the namespace's own. So nothing systemd does reaches the host. (A
//! first attempt without this, booting `sysinit.target` with the host's `/tmp`, let
//! `systemd-tmpfiles --boot` empty the host's `/tmp`.)
//! The namespace's cgroup root is a fresh cgroup `spire-rs-systemd-<pid>` on the host, removed
//! afterwards.
//!
//! Processes that must share systemd's view of PIDs (the agent, a workload outside any unit) run
//! through `nsenter` into the PID and mount namespaces. Dropping the value kills systemd, and with
//! it, as PID 1, every process of the namespace.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The systemd binaries looked for, Debian's first.
const SYSTEMD: [&str; 2] = ["/lib/systemd/systemd", "/usr/lib/systemd/systemd"];

/// The target systemd boots into: D-Bus and nothing else.
const TEST_TARGET: &str = "[Unit]
Description=spire-rs systemd attestor test
DefaultDependencies=no
Wants=dbus.socket dbus.service
";

/// Debian's `dbus.socket`, without the default dependencies on `sysinit.target`.
const DBUS_SOCKET: &str = "[Unit]
Description=D-Bus System Message Bus Socket
DefaultDependencies=no

[Socket]
ListenStream=/run/dbus/system_bus_socket
";

/// Debian's `dbus.service`, likewise.
const DBUS_SERVICE: &str = "[Unit]
Description=D-Bus System Message Bus
DefaultDependencies=no
Requires=dbus.socket
After=dbus.socket

[Service]
ExecStart=/usr/bin/dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only
";

/// Runs in the new namespaces (as their PID 1, until it becomes systemd): `$1` is the test's
/// directory, `$2` the cgroup layout (`hybrid` or `unified`), `$3` the systemd binary.
const BOOT: &str = r#"set -eu
dir=$1
mount --make-rprivate /
mount --bind "$dir" "$dir"
# Every file system of the host read-only (but the kernel's, and the test's directory).
findmnt -rn -o TARGET | while read -r m; do
    case "$m" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|"$dir") continue ;; esac
    mount -o remount,bind,ro "$m" 2>/dev/null || echo "left writable: $m"
done
mount -t proc proc /proc
for probe in /.spire-rs-probe /tmp/.spire-rs-probe; do
    if touch "$probe" 2>/dev/null; then rm -f "$probe"; echo "the host's $probe is writable"; exit 1; fi
done
mount -o remount,bind,ro /sys
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /var/tmp
mkdir -p /run/systemd/system
cp "$dir"/units/* /run/systemd/system/
mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup
if [ "$2" = hybrid ]; then
    mkdir /sys/fs/cgroup/systemd /sys/fs/cgroup/unified
    mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
    mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
else
    mount -t cgroup2 cgroup2 /sys/fs/cgroup
fi
export container=spire-rs-test
exec "$3" --system --unit=spire-rs-test.target --log-target=console --log-level=info
"#;

/// A running namespaced systemd.
#[derive(Debug)]
pub(crate) struct SystemdNs {
    /// `unshare`, whose child is systemd.
    unshare: Child,
    /// systemd's PID on the host.
    pub(crate) pid: u32,
    /// The host cgroups made for the namespace, removed on drop.
    cgroups: Vec<PathBuf>,
    /// The test's directory, writable inside.
    pub(crate) dir: PathBuf,
}

/// Why no systemd can run here; the test says so and is skipped.
pub(crate) fn unavailable() -> Option<String> {
    if fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) != 0 {
        return Some("namespaces and cgroups need root".into());
    }
    if systemd_binary().is_none() {
        return Some("no systemd binary (Debian's systemd package)".into());
    }
    for tool in ["dbus-daemon", "unshare", "nsenter", "findmnt", "systemctl", "busctl"].map(|t| format!("/usr/bin/{t}"))
    {
        if !Path::new(&tool).exists() {
            return Some(format!("{tool} is not installed"));
        }
    }
    if layout().is_none() {
        return Some("the cgroup hierarchy is neither cgroup v2 nor systemd's hybrid layout".into());
    }
    None
}

fn systemd_binary() -> Option<&'static str> {
    SYSTEMD.into_iter().find(|p| Path::new(p).exists())
}

/// `hybrid` (cgroup v1 `name=systemd` and cgroup v2 at `unified`) or `unified` (cgroup v2 only).
fn layout() -> Option<&'static str> {
    if Path::new("/sys/fs/cgroup/systemd/cgroup.procs").exists()
        && Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists()
    {
        Some("hybrid")
    } else if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        Some("unified")
    } else {
        None
    }
}

impl SystemdNs {
    /// Boots systemd with `units` (file name, content) besides D-Bus, and waits until it answers on
    /// the system bus. `dir` is the test's directory; the units are copied from `dir/units`.
    pub(crate) async fn boot(dir: &Path, units: &[(&str, String)]) -> Self {
        let layout = layout().expect("a known cgroup layout");
        let systemd = systemd_binary().expect("systemd");
        let unit_dir = dir.join("units");
        fs::create_dir_all(&unit_dir).expect("units dir");
        fs::write(unit_dir.join("spire-rs-test.target"), TEST_TARGET).expect("target");
        fs::write(unit_dir.join("dbus.socket"), DBUS_SOCKET).expect("dbus.socket");
        fs::write(unit_dir.join("dbus.service"), DBUS_SERVICE).expect("dbus.service");
        for (name, content) in units {
            fs::write(unit_dir.join(name), content).expect("unit");
        }
        fs::write(dir.join("boot.sh"), BOOT).expect("boot script");

        let name = format!("spire-rs-systemd-{}", std::process::id());
        let roots: &[&str] = if layout == "hybrid" {
            &["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"]
        } else {
            &["/sys/fs/cgroup"]
        };
        let cgroups: Vec<PathBuf> = roots.iter().map(|root| Path::new(root).join(&name)).collect();
        for cgroup in &cgroups {
            fs::create_dir_all(cgroup).expect("create the namespace's cgroup");
        }
        // Into the cgroups first, so that the cgroup namespace is rooted there.
        let enter = cgroups.iter().map(|c| format!("echo $$ > {}/cgroup.procs; ", c.display())).collect::<String>();
        let log = fs::File::create(dir.join("systemd.log")).expect("systemd log");
        let unshare = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{enter}exec unshare --pid --fork --mount --uts --cgroup sh {}/boot.sh {} {layout} {systemd}",
                dir.display(),
                dir.display()
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start unshare");
        let mut ns = Self { pid: 0, unshare, cgroups, dir: dir.to_path_buf() };
        ns.pid = ns.wait_child().await;
        ns.wait_bus().await;
        ns
    }

    /// systemd's host PID: `unshare`'s child, once it has exec'd systemd.
    async fn wait_child(&mut self) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        let unshare = self.unshare.id();
        loop {
            let children = fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children")).unwrap_or_default();
            if let Some(pid) = children.split_whitespace().next().and_then(|p| p.parse::<u32>().ok())
                && fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.ends_with("systemd"))
            {
                return pid;
            }
            if let Ok(Some(status)) = self.unshare.try_wait() {
                panic!("systemd's namespace exited with {status}: {}", self.log());
            }
            assert!(Instant::now() < deadline, "systemd did not start: {}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until systemd answers on the system bus (it connects once `dbus.service` is up).
    async fn wait_bus(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.run(&[
                "busctl",
                "--system",
                "call",
                "org.freedesktop.systemd1",
                "/org/freedesktop/systemd1",
                "org.freedesktop.systemd1.Manager",
                "GetUnitByPID",
                "u",
                "1",
            ]);
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "systemd never answered on the bus: {}{}",
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `nsenter` into systemd's PID and mount namespaces, then `args`: for [`Command`]s that must see
    /// the namespace's PIDs (the agent, a workload outside any unit).
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.pid.to_string(), "-p", "-m", "--"]).args(args);
        cmd
    }

    /// Runs `args` inside, as [`SystemdNs::command`], and waits for it.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().expect("run nsenter")
    }

    /// A wrapper script that runs `binary` inside with its arguments (for launchers that take a
    /// binary path, like the test kit's agent).
    pub(crate) fn wrapper(&self, binary: &Path, name: &str) -> PathBuf {
        let path = self.dir.join(name);
        let script = format!("#!/bin/sh\nexec nsenter -t {} -p -m -- {} \"$@\"\n", self.pid, binary.display());
        fs::write(&path, script).expect("wrapper");
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        path
    }

    /// systemd's console output (what failed, when something did).
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.dir.join("systemd.log")).unwrap_or_default()
    }
}

impl Drop for SystemdNs {
    fn drop(&mut self) {
        if self.pid != 0 {
            // PID 1 of the namespace: its end is every process's end there.
            let _ = Command::new("kill").args(["-KILL", &self.pid.to_string()]).status();
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        // The cgroups empty as their processes are reaped: remove the deepest first, a few tries.
        for _ in 0..50 {
            for cgroup in &self.cgroups {
                remove_cgroup(cgroup);
            }
            if self.cgroups.iter().all(|c| !c.exists()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Removes `dir` and its child cgroups (directories only: a cgroup's files go with it).
fn remove_cgroup(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&entry.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}
