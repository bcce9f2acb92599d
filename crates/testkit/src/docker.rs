//! A real Docker engine for the tests: Debian's `docker.io` (`dockerd` and the `docker` CLI),
//! started by the test process with its own data root, socket and no networking, so a workload can
//! run in a real container with a real cgroup path (`/docker/<64 hex>` under cgroup v1).
//!
//! No image can be pulled here: [`Dockerd::import_image`] builds a root filesystem from Debian's
//! `busybox-static` and the given host binaries with the shared libraries `ldd` lists, and imports
//! it with `docker import`. Processes started with `docker exec` join the container's cgroups, which
//! is what workload attestation reads.
//!
//! dockerd is started under `setpriv --pdeathsig KILL`; containers are given a bounded `sleep` so
//! that nothing outlives a killed test run for long.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::kube::which;
use crate::peers;

/// A running Docker engine.
#[derive(Debug)]
pub struct Dockerd {
    dir: PathBuf,
    /// Kept so the engine is never a zombie of ours; it dies with the test process.
    _process: std::process::Child,
}

impl Dockerd {
    /// The engine of this test process, started on first use; `None` (the test prints that it is
    /// skipped) when `dockerd` or busybox is missing, unless `SPIRE_REQUIRE_PEERS=1`.
    pub async fn shared() -> Option<&'static Dockerd> {
        static DOCKERD: OnceCell<Option<Dockerd>> = OnceCell::const_new();
        DOCKERD
            .get_or_init(|| async { tokio::task::spawn_blocking(Dockerd::start).await.expect("start dockerd") })
            .await
            .as_ref()
    }

    fn start() -> Option<Dockerd> {
        for (tool, package) in [("dockerd", "docker.io"), ("docker", "docker.io"), ("busybox", "busybox-static")] {
            if which(tool).is_none() {
                assert!(!peers::required(), "{tool} is missing: apt-get install {package}");
                eprintln!("skipped: {tool} is not installed (apt-get install {package})");
                return None;
            }
        }
        let dir = crate::scratch::owned_dir("spire-rs-docker-");
        let log = std::fs::File::create(dir.join("dockerd.log")).expect("dockerd log");
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "KILL", "--"])
            .arg(which("dockerd").expect("checked"))
            .arg(format!("--data-root={}", dir.join("data").display()))
            .arg(format!("--exec-root={}", dir.join("exec").display()))
            .arg(format!("--pidfile={}", dir.join("dockerd.pid").display()))
            .arg(format!("--host=unix://{}", dir.join("docker.sock").display()))
            .args(["--iptables=false", "--bridge=none", "--ip-forward=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        let process = crate::databases::spawn_tied(cmd).expect("start dockerd");
        let d = Dockerd { dir, _process: process };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !d.docker(&["version"]).status.success() {
            assert!(Instant::now() < deadline, "dockerd did not start:\n{}", d.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(d)
    }

    /// The engine's scratch directory (removed by a later test process once this one exits): a
    /// place for files that go into images.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The engine's API socket (for `docker -H unix://...` processes of one's own).
    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// What dockerd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    /// Runs the `docker` CLI against this engine.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg(format!("--host=unix://{}", self.socket().display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Imports an image `tag` whose root holds busybox (as `/bin/sh`, `/bin/sleep`, ...) and each
    /// host file of `files` at its path in the image, with the shared libraries it needs. Returns
    /// the image ID (`sha256:...`).
    pub fn import_image(&self, tag: &str, files: &[(&Path, &str)]) -> String {
        let root = self.dir.join(format!("rootfs-{}", tag.replace([':', '/'], "-")));
        let _ = std::fs::remove_dir_all(&root);
        copy_into(&root, &which("busybox").expect("checked"), "/bin/busybox");
        for applet in ["sh", "sleep", "cat", "ls", "id"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("busybox applet");
        }
        for (src, dest) in files {
            copy_into(&root, src, dest);
            for lib in shared_libraries(src) {
                let dest = lib.to_string_lossy().into_owned();
                copy_into(&root, &lib, &dest);
            }
        }
        std::fs::create_dir_all(root.join("tmp")).expect("tmp");
        let tar = Command::new("tar").arg("-C").arg(&root).args(["-c", "."]).stdout(Stdio::piped()).spawn();
        let mut tar = tar.expect("run tar");
        let out = Command::new("docker")
            .arg(format!("--host=unix://{}", self.socket().display()))
            .args(["import", "-", tag])
            .stdin(tar.stdout.take().expect("tar stdout"))
            .output()
            .expect("docker import");
        assert!(tar.wait().expect("tar").success(), "tar of the image's root failed");
        assert!(out.status.success(), "docker import: {}", String::from_utf8_lossy(&out.stderr));
        self.image_id(tag)
    }

    /// The ID (`sha256:...`) of image `tag`.
    pub fn image_id(&self, tag: &str) -> String {
        self.docker_ok(&["image", "inspect", "--format", "{{.Id}}", tag])
    }

    /// Starts a container that sleeps for `spec.lifetime`; returns its 64-hex ID.
    pub fn run_sleeping(&self, spec: &Container<'_>) -> String {
        let secs = spec.lifetime.as_secs().max(1).to_string();
        let mut args = vec!["run".to_owned(), "-d".into(), "--rm".into(), "--network=none".into()];
        args.extend(["--name".into(), spec.name.to_owned()]);
        if let Some(parent) = spec.cgroup_parent {
            args.push(format!("--cgroup-parent={parent}"));
        }
        for v in spec.volumes {
            args.extend(["-v".into(), v.clone()]);
        }
        args.extend([spec.image.to_owned(), "/bin/sleep".into(), secs]);
        self.docker_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Runs `args` in container `id` (in its cgroups and namespaces).
    pub fn exec(&self, id: &str, args: &[&str]) -> Output {
        let mut all = vec!["exec", id];
        all.extend(args);
        self.docker(&all)
    }

    /// Removes container `id`, running or not.
    pub fn remove(&self, id: &str) {
        let _ = self.docker(&["rm", "-f", id]);
    }
}

/// What [`Dockerd::run_sleeping`] starts.
#[derive(Debug, Clone)]
pub struct Container<'a> {
    /// The image.
    pub image: &'a str,
    /// The container name.
    pub name: &'a str,
    /// Bind mounts, `host:container`.
    pub volumes: &'a [String],
    /// `--cgroup-parent`: with `/kubepods/besteffort/pod<uid>` the container's cgroup is
    /// `/kubepods/besteffort/pod<uid>/<id>`, the layout the kubelet makes with Docker and the
    /// cgroupfs driver, which is how workload attestation finds the pod.
    pub cgroup_parent: Option<&'a str>,
    /// How long it sleeps before it exits (and is removed).
    pub lifetime: std::time::Duration,
}

/// Copies `src` to `root` + `dest`, creating directories, keeping it executable.
fn copy_into(root: &Path, src: &Path, dest: &str) {
    let target = root.join(dest.trim_start_matches('/'));
    std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir in rootfs");
    std::fs::copy(src, &target).unwrap_or_else(|e| panic!("copy {} into the image: {e}", src.display()));
}

/// The shared libraries `ldd` says `binary` loads, the dynamic loader included.
fn shared_libraries(binary: &Path) -> Vec<PathBuf> {
    let Ok(out) = Command::new("ldd").arg(binary).output() else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}
