//! Real `spire-server` processes for end-to-end tests: a config in a temp dir, a free port, the
//! private socket, and a kill on drop so a failing test leaves nothing running.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// A running `spire-server run`.
#[derive(Debug)]
pub struct TestServer {
    binary: PathBuf,
    /// Holds config, data dir and socket.
    pub dir: PathBuf,
    /// The private API socket.
    pub socket: PathBuf,
    /// The TCP port.
    pub port: u16,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The server config the tests use: SQLite and disk keys under `dir`, `extra` appended to the
/// `server {}` block.
pub fn server_conf(dir: &Path, port: u16, extra: &str) -> String {
    let sqlite = format!(
        "database_type = \"sqlite3\"\n            connection_string = \"{}/datastore.sqlite3\"",
        dir.join("data").display()
    );
    server_conf_with_datastore(dir, port, extra, &sqlite)
}

/// [`server_conf`] with `datastore` as the DataStore "sql" plugin_data body (e.g. PostgreSQL).
pub fn server_conf_with_datastore(dir: &Path, port: u16, extra: &str, datastore: &str) -> String {
    format!(
        r#"server {{
    bind_address = "127.0.0.1"
    bind_port = "{port}"
    socket_path = "{socket}"
    trust_domain = "example.org"
    data_dir = "{data}"
    log_level = "DEBUG"
    {extra}
}}

plugins {{
    DataStore "sql" {{
        plugin_data {{
            {datastore}
        }}
    }}
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
    KeyManager "disk" {{
        plugin_data {{
            keys_path = "{data}/keys.json"
        }}
    }}
}}
"#,
        socket = dir.join("api.sock").display(),
        data = dir.join("data").display(),
    )
}

impl TestServer {
    /// Starts `binary` with a fresh temp dir and waits until its socket answers.
    pub async fn start(binary: impl Into<PathBuf>, extra_config: &str) -> Self {
        Self::start_with_datastore(binary, extra_config, None).await
    }

    /// [`TestServer::start`] on the datastore `datastore` (a DataStore "sql" plugin_data body), or
    /// on its own SQLite file when `None`.
    pub async fn start_with_datastore(binary: impl Into<PathBuf>, extra_config: &str, datastore: Option<&str>) -> Self {
        Self::start_with_config(binary, |dir, port| match datastore {
            Some(data) => server_conf_with_datastore(dir, port, extra_config, data),
            None => server_conf(dir, port, extra_config),
        })
        .await
    }

    /// Starts `binary` on the whole config `conf(dir, port)` returns for a fresh temp dir and a free
    /// port (another implementation's server, with keys of its own). The config must put the private
    /// socket at `<dir>/api.sock`, and the log, if the server does not write it to stderr, at
    /// `<dir>/server.log`.
    pub async fn start_with_config(binary: impl Into<PathBuf>, conf: impl FnOnce(&Path, u16) -> String) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let port = free_port();
        std::fs::write(dir.join("server.conf"), conf(&dir, port)).expect("write config");
        let mut s =
            Self { binary: binary.into(), socket: dir.join("api.sock"), dir, port, child: None, _tmp: Some(tmp) };
        s.spawn().await;
        s
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("server.log")).expect("log");
        let child = Command::new(&self.binary)
            .args(["run", "-config"])
            .arg(self.dir.join("server.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start spire-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if UnixStream::connect(&self.socket).await.is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("spire-server exited with {status}: {}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("spire-server did not open its socket in time: {}", self.log());
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Stops the process (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The exit status if the process has ended (it should not have, while the test expects it up).
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts the same server (same config, data and keys).
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// A gRPC channel over the private socket.
    pub async fn channel(&self) -> Channel {
        uds_channel(&self.socket).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A gRPC channel to a Unix socket.
pub async fn uds_channel(path: &Path) -> Channel {
    let path = path.to_path_buf();
    Endpoint::try_from("http://[::]:50051")
        .expect("static URI")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(hyper_util::rt::TokioIo::new) }
        }))
        .await
        .expect("connect to the socket")
}
