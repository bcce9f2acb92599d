//! Real PostgreSQL and MariaDB servers for the datastore's conformance and end-to-end tests.
//!
//! Each server runs from the distribution's binaries (Debian: `postgresql-15`, `mariadb-server`) in
//! its own temp dir, listening on 127.0.0.1 on a free port. [`PostgresServer::shared`] and
//! [`MariaDbServer::shared`] start one server per test process, shared by all its tests; every test
//! takes its own empty database with `fresh_database`. Tests that stop or crash the server take a
//! [`PostgresServer::dedicated`] / [`MariaDbServer::dedicated`] one instead, so they do not disturb
//! the tests running next to them.
//!
//! Cleanup: statics are never dropped, so the servers are started under `setpriv --pdeathsig KILL`
//! from a thread that lives as long as the process; the kernel kills them when the test process
//! exits, however it exits. Their temp dirs (and PostgreSQL's small System V shared memory segment)
//! are removed by the next test process that starts a server. Dedicated servers are also killed
//! and removed on drop.
//!
//! When root (CI), the servers run as the packages' `postgres` / `mysql` users (or `nobody`):
//! `initdb` and `postgres` refuse to run as root.
//!
//! Missing binaries skip the test (the `shared`/`dedicated` constructors return `None` after
//! printing why) unless `SPIRE_REQUIRE_DATABASES=1`, which CI sets so it never skips silently.
//!
//! Durability is off (`fsync=off`, `full_page_writes=off`, `innodb_flush_method=nosync`,
//! `innodb_flush_log_at_trx_commit=2`, ...), for speed: nothing waits for the disk. Every commit
//! still reaches the OS before it returns (`synchronous_commit` stays on), so committed data
//! survives a server crash or restart, which the fault tests check, but not a machine crash.
//! Never copy these settings to a real deployment.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::process::free_port;

/// Set to `1` to turn "server not installed" into a panic instead of a skip (CI sets it).
pub const REQUIRE_ENV: &str = "SPIRE_REQUIRE_DATABASES";
/// The login every test database belongs to.
pub const USER: &str = "spire";
/// Its password (URL- and DSN-safe).
pub const PASSWORD: &str = "spire-test-pw";

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful stop may take before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Which database server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// PostgreSQL (15 in CI).
    Postgres,
    /// MariaDB (10.11 in CI), SPIRE's `mysql` database type.
    MariaDb,
}

impl Engine {
    /// SPIRE's `database_type` for this server: `postgres` or `mysql`.
    pub fn spire_database_type(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::MariaDb => "mysql",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Engine::Postgres => "PostgreSQL",
            Engine::MariaDb => "MariaDB",
        }
    }

    fn install_hint(self) -> &'static str {
        match self {
            Engine::Postgres => "apt-get install postgresql-15",
            Engine::MariaDb => "apt-get install mariadb-server",
        }
    }

    fn dir_prefix(self) -> &'static str {
        match self {
            Engine::Postgres => "spire-pg-",
            Engine::MariaDb => "spire-mariadb-",
        }
    }
}

/// Whether `SPIRE_REQUIRE_DATABASES` asks for a panic instead of a skip.
pub fn databases_required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"))
}

/// A PostgreSQL server (`postgres`), superuser `postgres` over the Unix socket (trust), [`USER`]
/// over TCP with a SCRAM password.
#[derive(Debug)]
pub struct PostgresServer {
    server: Server,
}

/// A MariaDB server (`mariadbd`), `root` over the Unix socket, [`USER`]@`%` over TCP with a
/// password and all privileges.
#[derive(Debug)]
pub struct MariaDbServer {
    server: Server,
}

macro_rules! server_api {
    ($ty:ident, $engine:expr) => {
        impl $ty {
            /// Whether the server binaries (and `setpriv`) are installed.
            pub fn available() -> bool {
                Binaries::find($engine).is_ok()
            }

            /// The server shared by all tests of this process, started on first use. `None` (after
            /// printing why) when the binaries are missing, unless [`REQUIRE_ENV`] is set: then it
            /// panics, as it does when an installed server fails to start.
            pub async fn shared() -> Option<&'static Self> {
                static CELL: OnceCell<$ty> = OnceCell::const_new();
                let bins = Binaries::find_or_skip($engine)?;
                Some(CELL.get_or_init(|| async move { Self { server: Server::boot($engine, bins).await } }).await)
            }

            /// A server of its own, for tests that stop, crash or restart it. Killed and deleted on
            /// drop. `None` as for [`Self::shared`].
            pub async fn dedicated() -> Option<Self> {
                let bins = Binaries::find_or_skip($engine)?;
                Some(Self { server: Server::boot($engine, bins).await })
            }

            /// A new, empty database owned by [`USER`], dropped when the returned value is.
            pub async fn fresh_database(&self) -> TestDatabase {
                self.server.fresh_database().await
            }

            /// The CA that signed the server's TLS certificate (for `localhost` and 127.0.0.1).
            pub fn tls_root_ca(&self) -> PathBuf {
                self.server.tls_ca()
            }

            /// The TCP port (on 127.0.0.1); it stays the same across restarts.
            pub fn port(&self) -> u16 {
                self.server.port
            }

            /// The temp dir holding the data dir, the socket and `server.log`.
            pub fn dir(&self) -> &Path {
                self.server.tmp.path()
            }

            /// The server's log so far (all runs appended).
            pub fn log(&self) -> String {
                self.server.log()
            }

            /// Whether the server process is running.
            pub fn is_running(&self) -> bool {
                self.server.is_running()
            }

            /// Starts the stopped server again (same port and data) and waits until it accepts
            /// connections. A no-op when it runs.
            ///
            /// Stopping, killing or restarting the shared server disturbs every test of the
            /// process: fault tests take a [`Self::dedicated`] one.
            pub async fn start(&self) {
                self.server.start().await
            }

            /// Shuts the server down cleanly (SIGKILL if that takes longer than 30 s). Open
            /// connections break.
            pub async fn stop(&self) {
                self.server.stop().await
            }

            /// Kills the server with SIGKILL, as a crash would; [`Self::start`] then runs crash
            /// recovery.
            pub async fn kill(&self) {
                self.server.kill().await
            }

            /// [`Self::stop`] then [`Self::start`].
            pub async fn restart(&self) {
                self.server.stop().await;
                self.server.start().await;
            }
        }
    };
}

server_api!(PostgresServer, Engine::Postgres);
server_api!(MariaDbServer, Engine::MariaDb);

/// One test's database. Dropping it drops the database (a blocking client call of a few ms),
/// closing the connections still open to it.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    admin: Admin,
}

impl TestDatabase {
    /// Its name: `t_<pid>_<counter>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which server it lives on.
    pub fn engine(&self) -> Engine {
        self.admin.engine
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.admin.port
    }

    /// A sqlx URL, as [`USER`] over TCP without TLS (the servers have no certificate).
    pub fn url(&self) -> String {
        let (name, port) = (&self.name, self.admin.port);
        match self.admin.engine {
            Engine::Postgres => format!("postgres://{USER}:{PASSWORD}@127.0.0.1:{port}/{name}?sslmode=disable"),
            Engine::MariaDb => format!("mysql://{USER}:{PASSWORD}@127.0.0.1:{port}/{name}?ssl-mode=disabled"),
        }
    }

    /// The `connection_string` SPIRE's SQL datastore takes for this database: a libpq key=value
    /// DSN for `postgres`, a Go MySQL driver DSN for `mysql`.
    pub fn spire_connection_string(&self) -> String {
        let (name, port) = (&self.name, self.admin.port);
        match self.admin.engine {
            Engine::Postgres => {
                format!("dbname={name} user={USER} password={PASSWORD} host=127.0.0.1 port={port} sslmode=disable")
            }
            Engine::MariaDb => format!("{USER}:{PASSWORD}@tcp(127.0.0.1:{port})/{name}?parseTime=true"),
        }
    }

    /// The command-line client (`psql` / `mariadb`) connected as [`USER`] over TCP to this database,
    /// printing unaligned rows without a header; append `-c SQL` (`psql`) or `-e SQL` (`mariadb`).
    pub fn client_command(&self) -> Command {
        let mut cmd = self.admin.client_base();
        match self.admin.engine {
            Engine::Postgres => {
                cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"]).arg(self.url());
            }
            Engine::MariaDb => {
                cmd.args(["--no-defaults", "--protocol=tcp", "-h", "127.0.0.1", "--batch", "--skip-column-names"])
                    .arg(format!("--port={}", self.port()))
                    .arg(format!("--user={USER}"))
                    .arg(format!("--password={PASSWORD}"))
                    .arg(format!("--database={}", self.name));
            }
        }
        cmd
    }

    /// Runs `sql` with [`Self::client_command`] and returns its output: one row a line, columns
    /// separated by `|` (PostgreSQL) or a tab (MariaDB).
    pub async fn try_query(&self, sql: &str) -> Result<String, String> {
        let mut cmd = self.client_command();
        cmd.arg(match self.admin.engine {
            Engine::Postgres => "-c",
            Engine::MariaDb => "-e",
        })
        .arg(sql);
        run_async(cmd).await
    }

    /// [`Self::try_query`], panicking on error.
    pub async fn query(&self, sql: &str) -> String {
        self.try_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{} query {sql:?} on {}: {e}", self.engine().label(), self.name))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Best effort: the server may be stopped by now.
        let name = &self.name;
        match self.admin.engine {
            Engine::Postgres => {
                let _ = run(self.admin.sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")));
            }
            Engine::MariaDb => {
                // No FORCE: kill the sessions using it first, or DROP would wait for their locks.
                let ids = run(self.admin.sql(&format!(
                    "SELECT id FROM information_schema.processlist WHERE db = '{name}' AND id <> CONNECTION_ID()"
                )))
                .unwrap_or_default();
                let mut sql = String::new();
                for id in ids.split_whitespace() {
                    let _ = write!(sql, "KILL CONNECTION {id}; ");
                }
                if !sql.is_empty() {
                    let _ = run(self.admin.sql(&sql)); // A session may have ended meanwhile.
                }
                let _ = run(self
                    .admin
                    .sql(&format!("SET SESSION lock_wait_timeout = 5; DROP DATABASE IF EXISTS `{name}`")));
            }
        }
    }
}

/// Administrative access over the Unix socket: the superuser and the client binary.
#[derive(Clone, Debug)]
struct Admin {
    engine: Engine,
    client: PathBuf,
    /// PostgreSQL: the socket directory. MariaDB: the socket.
    socket: PathBuf,
    port: u16,
}

impl Admin {
    fn client_base(&self) -> Command {
        let mut cmd = Command::new(&self.client);
        clean_env(&mut cmd);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// The client running `sql` as the superuser over the socket.
    fn sql(&self, sql: &str) -> Command {
        let mut cmd = self.client_base();
        match self.engine {
            Engine::Postgres => {
                cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-d", "postgres", "-h"])
                    .arg(&self.socket)
                    .arg(format!("--port={}", self.port))
                    .arg("-c")
                    .arg(sql);
            }
            Engine::MariaDb => {
                cmd.args(["--no-defaults", "--protocol=socket", "--user=root", "--batch", "--skip-column-names"])
                    .arg(format!("--socket={}", self.socket.display()))
                    .arg("-e")
                    .arg(sql);
            }
        }
        cmd
    }
}

/// The binaries a server needs.
#[derive(Clone, Debug)]
struct Binaries {
    /// `postgres` / `mariadbd`.
    server: PathBuf,
    /// `initdb` / `mariadb-install-db`.
    init: PathBuf,
    /// `psql` / `mariadb`.
    client: PathBuf,
    setpriv: PathBuf,
}

impl Binaries {
    /// The binaries, or what is missing ("PostgreSQL", "setpriv (util-linux)") and how to get it.
    fn find(engine: Engine) -> Result<Self, (&'static str, &'static str)> {
        let missing = (engine.label(), engine.install_hint());
        let setpriv = which("setpriv").ok_or(("setpriv (util-linux)", "apt-get install util-linux"))?;
        match engine {
            Engine::Postgres => {
                let mut dirs = vec![PathBuf::from("/usr/lib/postgresql/15/bin")];
                if let Ok(out) = Command::new("pg_config").arg("--bindir").stderr(Stdio::null()).output()
                    && out.status.success()
                {
                    dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
                }
                dirs.extend(search_path());
                let bindir = dirs
                    .into_iter()
                    .find(|d| d.join("postgres").is_file() && d.join("initdb").is_file())
                    .ok_or(missing)?;
                let client =
                    Some(bindir.join("psql")).filter(|p| p.is_file()).or_else(|| which("psql")).ok_or(missing)?;
                Ok(Self { server: bindir.join("postgres"), init: bindir.join("initdb"), client, setpriv })
            }
            Engine::MariaDb => Ok(Self {
                server: which("mariadbd").ok_or(missing)?,
                init: which("mariadb-install-db").ok_or(missing)?,
                client: which("mariadb").ok_or(missing)?,
                setpriv,
            }),
        }
    }

    fn find_or_skip(engine: Engine) -> Option<Self> {
        match Self::find(engine) {
            Ok(bins) => Some(bins),
            Err((what, hint)) if databases_required() => {
                panic!("{what} is not installed and {REQUIRE_ENV}=1 forbids skipping: {hint}")
            }
            Err((what, hint)) => {
                eprintln!("skipped: {what} not installed ({hint})");
                None
            }
        }
    }
}

/// The directories of `PATH`, then the sbin ones a non-root `PATH` often lacks.
fn search_path() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.extend(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin"].map(PathBuf::from));
    dirs
}

fn which(name: &str) -> Option<PathBuf> {
    search_path().into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// A minimal, predictable environment: no `PG*`/`MYSQL_*` variables or user config leaking in.
fn clean_env(cmd: &mut Command) {
    cmd.env_clear().env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").env("LC_ALL", "C");
}

/// The unprivileged account the servers run as when the tests run as root.
#[derive(Clone, Debug)]
struct RunAs {
    name: String,
    uid: u32,
    gid: u32,
}

impl RunAs {
    /// `None` when not root: the servers then run as the current user.
    fn for_engine(engine: Engine) -> Option<Self> {
        let root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
        if !root {
            return None;
        }
        let preferred = match engine {
            Engine::Postgres => "postgres",
            Engine::MariaDb => "mysql",
        };
        let lookup = |name: &str| -> Option<Self> {
            let id = |flag: &str| -> Option<u32> {
                let out = Command::new("id").arg(flag).arg(name).stderr(Stdio::null()).output().ok()?;
                String::from_utf8_lossy(&out.stdout).trim().parse().ok().filter(|_| out.status.success())
            };
            Some(Self { name: name.to_owned(), uid: id("-u")?, gid: id("-g")? })
        };
        Some(
            lookup(preferred)
                .or_else(|| lookup("nobody"))
                .expect("running as root, but neither the package user nor `nobody` exists to run the server"),
        )
    }
}

/// One server process and its files.
#[derive(Debug)]
struct Server {
    engine: Engine,
    bins: Binaries,
    run_as: Option<RunAs>,
    port: u16,
    /// Owned by the server's user. Holds `data/`, the socket(s) and `server.log`.
    tmp: tempfile::TempDir,
    child: Mutex<Option<Child>>,
}

impl Server {
    /// Creates the data dir and starts the server; panics on failure.
    async fn boot(engine: Engine, bins: Binaries) -> Self {
        let started = Instant::now();
        sweep_stale_dirs();
        let run_as = RunAs::for_engine(engine);
        // The servers' user must reach the dir, and socket paths must stay under 108 bytes.
        let parent = match std::env::temp_dir() {
            t if run_as.is_none() && t.as_os_str().len() <= 40 => t,
            _ => PathBuf::from("/tmp"),
        };
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{}{}-", engine.dir_prefix(), std::process::id()))
            .tempdir_in(&parent)
            .expect("create the database temp dir");
        // The superusers log in over the sockets without a password: keep other local users out.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod the temp dir");
        if let Some(r) = &run_as {
            std::os::unix::fs::chown(tmp.path(), Some(r.uid), Some(r.gid)).expect("chown the database temp dir");
        }
        let mut server = Self { engine, bins, run_as, port: free_port(), tmp, child: Mutex::new(None) };
        server.init_data_dir().await;
        server.write_tls_files();
        // Another process may take the free port before the server binds it: retry on a new one.
        for attempt in 1.. {
            match server.spawn_and_wait().await {
                Ok(()) => break,
                Err(e) if attempt < 5 && e.contains("Address already in use") => server.port = free_port(),
                Err(e) => panic!("{} failed to start: {e}", engine.label()),
            }
        }
        server.create_test_user().await;
        eprintln!(
            "{} ready on 127.0.0.1:{} in {:?} ({})",
            engine.label(),
            server.port,
            started.elapsed(),
            server.dir().display()
        );
        server
    }

    /// A CA and a server certificate for `localhost` and 127.0.0.1 under `<dir>/tls`, so that every
    /// test server also speaks TLS (clients choose: `sslmode=disable` or verifying [`Self::tls_ca`]).
    fn write_tls_files(&self) {
        let dir = self.dir().join("tls");
        std::fs::create_dir_all(&dir).expect("create the TLS dir");
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(rcgen::DnType::CommonName, "spire-rs test database CA");
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = rcgen::Issuer::new(ca, &ca_key);
        let key = rcgen::KeyPair::generate().expect("server key");
        let mut leaf =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("server params");
        leaf.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
        let cert = leaf.signed_by(&key, &issuer).expect("server certificate");
        let files = [
            ("ca.pem", ca_cert.pem(), 0o644),
            ("server.pem", cert.pem(), 0o644),
            ("server.key", key.serialize_pem(), 0o600),
        ];
        for (name, content, mode) in files {
            let path = dir.join(name);
            std::fs::write(&path, content).expect("write a TLS file");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod a TLS file");
            if let Some(r) = &self.run_as {
                std::os::unix::fs::chown(&path, Some(r.uid), Some(r.gid)).expect("chown a TLS file");
            }
        }
        if let Some(r) = &self.run_as {
            std::os::unix::fs::chown(&dir, Some(r.uid), Some(r.gid)).expect("chown the TLS dir");
        }
    }

    /// The CA that signed the server's TLS certificate.
    fn tls_ca(&self) -> PathBuf {
        self.dir().join("tls/ca.pem")
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir().join("data")
    }

    /// MariaDB's own temp dir: servers sharing /tmp trip over each other's temp tables.
    fn mariadb_tmpdir(&self) -> PathBuf {
        self.dir().join("tmp")
    }

    fn log_path(&self) -> PathBuf {
        self.dir().join("server.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn admin(&self) -> Admin {
        let socket = match self.engine {
            Engine::Postgres => self.dir().to_path_buf(),
            Engine::MariaDb => self.dir().join("mysqld.sock"),
        };
        Admin { engine: self.engine, client: self.bins.client.clone(), socket, port: self.port }
    }

    /// `program` as the server's user; with `tie`, also killed when the thread that spawns it
    /// exits (see [`spawn_tied`]).
    fn command(&self, program: &Path, tie: bool) -> Command {
        let mut cmd = Command::new(&self.bins.setpriv);
        if let Some(r) = &self.run_as {
            cmd.arg(format!("--reuid={}", r.uid)).arg(format!("--regid={}", r.gid)).arg("--init-groups");
        }
        if tie {
            cmd.args(["--pdeathsig", "KILL"]);
        }
        cmd.arg("--").arg(program).current_dir(self.dir()).stdin(Stdio::null());
        clean_env(&mut cmd);
        if let Some(r) = &self.run_as {
            // Tools that look at the environment should see the server's user and a HOME it can read.
            cmd.env("USER", &r.name).env("HOME", self.dir());
        }
        cmd
    }

    async fn init_data_dir(&self) {
        let data = self.data_dir();
        if self.engine == Engine::MariaDb {
            let tmpdir = self.mariadb_tmpdir();
            std::fs::create_dir(&tmpdir).expect("create MariaDB's tmpdir");
            if let Some(r) = &self.run_as {
                std::os::unix::fs::chown(&tmpdir, Some(r.uid), Some(r.gid)).expect("chown MariaDB's tmpdir");
            }
        }
        let mut cmd = self.command(&self.bins.init, false);
        match self.engine {
            Engine::Postgres => {
                cmd.arg("-D").arg(&data).args([
                    "--username=postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ]);
            }
            Engine::MariaDb => {
                cmd.arg("--no-defaults")
                    .arg(format!("--datadir={}", data.display()))
                    .arg(format!("--tmpdir={}", self.mariadb_tmpdir().display()))
                    .args(["--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"])
                    .args(MARIADB_SPEED_ARGS);
            }
        }
        if let Err(e) = run_async(cmd).await {
            panic!("{} failed to initialise {}: {e}", self.engine.label(), data.display());
        }
    }

    fn server_command(&self) -> Command {
        let mut cmd = self.command(&self.bins.server, true);
        let (dir, port) = (self.dir(), self.port);
        match self.engine {
            Engine::Postgres => {
                cmd.arg("-D").arg(self.data_dir()).arg("-k").arg(dir).arg(format!("--port={port}")).args([
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "max_connections=300",
                    "-c",
                    "fsync=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "ssl=on",
                ]);
                cmd.arg("-c").arg(format!("ssl_cert_file={}", dir.join("tls/server.pem").display()));
                cmd.arg("-c").arg(format!("ssl_key_file={}", dir.join("tls/server.key").display()));
            }
            Engine::MariaDb => {
                cmd.arg("--no-defaults")
                    .arg(format!("--datadir={}", self.data_dir().display()))
                    .arg(format!("--tmpdir={}", self.mariadb_tmpdir().display()))
                    .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
                    .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
                    .arg(format!("--port={port}"))
                    .args([
                        "--bind-address=127.0.0.1",
                        "--skip-name-resolve",
                        "--max-connections=500",
                        // Debian's packaged defaults (`--no-defaults` would give latin1).
                        "--character-set-server=utf8mb4",
                        "--collation-server=utf8mb4_general_ci",
                        // 2, not 0: a commit reaches the OS, so it survives a server crash.
                        "--innodb-flush-log-at-trx-commit=2",
                        "--sync-binlog=0",
                    ])
                    .arg(format!("--ssl-cert={}", dir.join("tls/server.pem").display()))
                    .arg(format!("--ssl-key={}", dir.join("tls/server.key").display()))
                    .arg(format!("--ssl-ca={}", dir.join("tls/ca.pem").display()))
                    .args(MARIADB_SPEED_ARGS);
            }
        }
        cmd
    }

    /// Spawns the server and waits until it accepts connections.
    async fn spawn_and_wait(&self) -> Result<(), String> {
        let log_start = std::fs::metadata(self.log_path()).map(|m| m.len() as usize).unwrap_or(0);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("open server.log");
        let mut cmd = self.server_command();
        cmd.stdout(log.try_clone().expect("dup server.log")).stderr(log);
        let child = spawn_tied(cmd).map_err(|e| format!("spawn {}: {e}", self.bins.server.display()))?;
        let pid = child.id();
        *self.child.lock().expect("child lock") = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let exited = {
                let mut guard = self.child.lock().expect("child lock");
                match guard.as_mut().map(|c| c.try_wait()) {
                    Some(Ok(Some(status))) => {
                        guard.take();
                        Some(status.to_string())
                    }
                    None => Some("(stopped meanwhile)".to_owned()),
                    _ => None,
                }
            };
            let new_log = || self.log().get(log_start..).unwrap_or_default().to_owned();
            if let Some(status) = exited {
                return Err(format!("server exited with {status}; its log:\n{}", new_log()));
            }
            if self.accepts_connections(pid, &new_log()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill().await;
                return Err(format!("not ready after {START_TIMEOUT:?}; its log:\n{}", new_log()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn accepts_connections(&self, pid: u32, new_log: &str) -> bool {
        let ready = match self.engine {
            // Line 1 is the postmaster's pid (a crashed one leaves its file behind), line 8 its state.
            Engine::Postgres => std::fs::read_to_string(self.data_dir().join("postmaster.pid")).is_ok_and(|f| {
                let lines: Vec<&str> = f.lines().map(str::trim).collect();
                lines.first() == Some(&pid.to_string().as_str()) && lines.get(7) == Some(&"ready")
            }),
            Engine::MariaDb => new_log.contains("ready for connections"),
        };
        ready
            && TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], self.port)), Duration::from_secs(1))
                .is_ok()
    }

    async fn create_test_user(&self) {
        let sql = match self.engine {
            Engine::Postgres => format!("CREATE ROLE {USER} LOGIN CREATEDB PASSWORD '{PASSWORD}'"),
            Engine::MariaDb => format!(
                "CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; \
                 GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%' WITH GRANT OPTION"
            ),
        };
        if let Err(e) = run_async(self.admin().sql(&sql)).await {
            panic!("{}: creating the {USER} user: {e}", self.engine.label());
        }
    }

    async fn fresh_database(&self) -> TestDatabase {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!("t_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let sql = match self.engine {
            Engine::Postgres => format!("CREATE DATABASE \"{name}\" OWNER {USER}"),
            Engine::MariaDb => format!("CREATE DATABASE `{name}`"),
        };
        let admin = self.admin();
        if let Err(e) = run_async(admin.sql(&sql)).await {
            panic!("{}: creating database {name}: {e}", self.engine.label());
        }
        TestDatabase { name, admin }
    }

    fn is_running(&self) -> bool {
        let mut guard = self.child.lock().expect("child lock");
        match guard.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) => {
                guard.take();
                false
            }
            None => false,
        }
    }

    async fn start(&self) {
        if self.is_running() {
            return;
        }
        // After a kill, PostgreSQL refuses to start while the old backends still hold its shared
        // memory; they exit within moments.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match self.spawn_and_wait().await {
                Ok(()) => return,
                Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(e) => panic!("{} failed to restart: {e}", self.engine.label()),
            }
        }
    }

    /// Signals the server (SIGINT is PostgreSQL's fast shutdown, SIGTERM MariaDB's) and waits.
    async fn stop(&self) {
        let Some(mut child) = self.child.lock().expect("child lock").take() else { return };
        let signal = match self.engine {
            Engine::Postgres => "INT",
            Engine::MariaDb => "TERM",
        };
        send_signal(child.id(), signal);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!("{} did not stop within {STOP_TIMEOUT:?}: killing it", self.engine.label());
        let _ = child.kill();
        let _ = child.wait();
    }

    async fn kill(&self) {
        let child = self.child.lock().expect("child lock").take();
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    /// Only dedicated servers get here; the shared ones die with the process.
    fn drop(&mut self) {
        let child = self.child.get_mut().map(Option::take).unwrap_or_else(|e| e.into_inner().take());
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.engine == Engine::Postgres {
            remove_pg_shared_memory(&self.data_dir());
        }
        // The TempDir field then removes the files.
    }
}

/// Smaller and unsynced InnoDB files: install and start in well under a second. Simulated AIO
/// avoids io_uring/libaio, which containers often forbid.
const MARIADB_SPEED_ARGS: [&str; 4] = [
    "--innodb-log-file-size=16M",
    "--innodb-flush-method=nosync",
    "--innodb-doublewrite=0",
    "--innodb-use-native-aio=0",
];

/// Spawns `cmd` from a thread that lives as long as the process. `PR_SET_PDEATHSIG` (set by
/// `setpriv --pdeathsig`) fires when the *thread* that forked the child exits, and test threads
/// and runtime workers come and go while the shared servers must outlive them.
pub(crate) fn spawn_tied(cmd: Command) -> std::io::Result<Child> {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("database-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the database spawner thread");
        Mutex::new(tx)
    });
    let (reply, result) = mpsc::channel();
    spawner.lock().expect("spawner lock").send((cmd, reply)).expect("spawner thread gone");
    result.recv().expect("spawner thread gone")
}

/// Sends `signal` (e.g. `TERM`) to `pid` with the shell's `kill` (std has only SIGKILL).
fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("sh").args(["-c", "kill -s \"$1\" \"$2\"", "sh", signal, &pid.to_string()]).status();
}

/// Runs `cmd`, returning its stdout (trimmed) or an error with its stderr.
fn run(mut cmd: Command) -> Result<String, String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("run {:?}: {e}", cmd.get_program()))?;
    finish(&cmd, out)
}

async fn run_async(cmd: Command) -> Result<String, String> {
    let program = cmd.get_program().to_owned();
    let mut cmd = tokio::process::Command::from(cmd);
    let out = cmd.stdin(Stdio::null()).output().await.map_err(|e| format!("run {program:?}: {e}"))?;
    finish(cmd.as_std(), out)
}

fn finish(cmd: &Command, out: Output) -> Result<String, String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        Err(format!(
            "{} {} exited with {}:\n{}{}",
            cmd.get_program().to_string_lossy(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Removes the System V shared memory segment a killed postmaster leaves behind (line 7 of
/// `postmaster.pid`: key and id). The kernel frees it once the last backend detaches.
fn remove_pg_shared_memory(data_dir: &Path) {
    let Ok(pidfile) = std::fs::read_to_string(data_dir.join("postmaster.pid")) else { return };
    if let Some(id) = pidfile.lines().nth(6).and_then(|l| l.split_whitespace().nth(1)) {
        let _ = Command::new("ipcrm").args(["-m", id]).stderr(Stdio::null()).status();
    }
}

/// Removes the temp dirs of test processes that have exited (their servers died with them), once
/// per process.
fn sweep_stale_dirs() {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| {
        let mut parents = vec![PathBuf::from("/tmp"), std::env::temp_dir()];
        parents.dedup();
        for parent in parents {
            let Ok(entries) = std::fs::read_dir(&parent) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some((engine, rest)) = [Engine::Postgres, Engine::MariaDb]
                    .into_iter()
                    .find_map(|e| name.strip_prefix(e.dir_prefix()).map(|rest| (e, rest)))
                else {
                    continue;
                };
                let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
                if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
                    continue;
                }
                if engine == Engine::Postgres {
                    remove_pg_shared_memory(&entry.path().join("data"));
                }
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    });
}
