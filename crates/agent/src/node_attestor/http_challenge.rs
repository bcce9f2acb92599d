//! `http_challenge`: the agent names its host, an agent name and a port; the server sends a nonce
//! and fetches it back over plain HTTP from
//! `http://<hostname>:<port>/.well-known/spiffe/nodeattestor/http_challenge/<agentname>/challenge`.
//!
//! Configuration, as SPIRE's agent plugin takes it:
//! `NodeAttestor "http_challenge" { plugin_data { hostname = "..." agentname = "..." port = 80 advertised_port = 80 } }`,
//! all optional: `hostname` defaults to the machine's host name (read when the agent starts, as
//! SPIRE reads it when configured), `agentname` to `default`, `port` to a random free port and
//! `advertised_port` (what the server is told to call, for a proxy in front) to the port listened
//! on.
//!
//! The listener is opened on every interface when the payload is built (so that a random port can
//! be advertised), and serves the nonce only once the challenge has arrived. SPIRE's agent serves
//! until the attestation stream ends; the attestation hook here has no end-of-stream signal, so the
//! nonce is served for [`SERVE_WINDOW`] (longer than the server's 10-second fetch limit), or until
//! the next attestation or the attestor's end, whichever comes first.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use spire_attestation::http_challenge::{AttestationData, Challenge, RESPONSE, challenge_path, unescape_path};
use spire_config::{ConfigError, PluginConfig};
use tokio::net::TcpListener;
use tokio::task::{AbortHandle, JoinSet};

use super::{NodeAttestor, NodeAttestorError};

pub use spire_attestation::http_challenge::PLUGIN_NAME;

/// How long the nonce is served after the challenge arrives.
pub const SERVE_WINDOW: Duration = Duration::from_secs(30);

/// SPIRE's read and write timeouts for the challenge server.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The plugin's `plugin_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpChallengeConfig {
    /// `hostname`: `None` for the machine's host name.
    pub hostname: Option<String>,
    /// `agentname` (default `default`).
    pub agentname: String,
    /// `port`: 0 for a random free port.
    pub port: i64,
    /// `advertised_port`: 0 for the port listened on.
    pub advertised_port: i64,
}

impl HttpChallengeConfig {
    /// Decodes the plugin's data; unknown keys are refused with their line.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        spire_config::plugin_data::decode(plugin, |r| {
            let hostname = r.non_empty_string("hostname");
            let agentname = r.non_empty_string("agentname").unwrap_or_else(|| "default".into());
            let port = r.int::<i64>("port").unwrap_or(0);
            let advertised_port = r.int::<i64>("advertised_port").filter(|p| *p != 0).unwrap_or(port);
            Self { hostname, agentname, port, advertised_port }
        })
    }
}

/// Why the plugin could not attest (SPIRE's wording).
#[derive(Debug, thiserror::Error)]
pub enum HttpChallengeError {
    /// The machine's host name could not be read.
    #[error("unable to fetch hostname: {0}")]
    Hostname(std::io::Error),
    /// The port could not be listened on.
    #[error("could not listen on port {port}: {reason}")]
    Listen {
        /// The configured port.
        port: i64,
        /// Why.
        reason: String,
    },
    /// The challenge is not JSON of the expected shape.
    #[error("unable to unmarshal challenge: {0}")]
    BadChallenge(String),
    /// A challenge came before any payload, so nothing listens.
    #[error("failed to start webserver: no listener (challenge before payload)")]
    NoListener,
}

/// The machine's host name, as Go's `os.Hostname` reads it on Linux.
pub fn machine_hostname() -> std::io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/hostname")?.trim_end_matches('\n').to_owned())
}

/// Attests by serving the server's nonce over HTTP.
#[derive(Debug)]
pub struct HttpChallengeAttestor {
    config: HttpChallengeConfig,
    hostname: String,
    state: Mutex<State>,
}

/// The listener between payload and challenge, and the serving task after.
#[derive(Debug, Default)]
struct State {
    listener: Option<TcpListener>,
    serving: Option<AbortHandle>,
}

impl State {
    fn stop(&mut self) {
        self.listener = None;
        if let Some(task) = self.serving.take() {
            task.abort();
        }
    }
}

impl Drop for HttpChallengeAttestor {
    fn drop(&mut self) {
        self.state.get_mut().unwrap_or_else(PoisonError::into_inner).stop();
    }
}

impl HttpChallengeAttestor {
    /// An attestor with `config`, the host name resolved now.
    pub fn from_config(config: HttpChallengeConfig) -> Result<Self, HttpChallengeError> {
        let hostname = match &config.hostname {
            Some(h) => h.clone(),
            None => machine_hostname().map_err(HttpChallengeError::Hostname)?,
        };
        Ok(Self { config, hostname, state: Mutex::default() })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Listens on every interface: IPv6 and IPv4 where the system allows, else IPv4.
    async fn listen(&self) -> Result<TcpListener, HttpChallengeError> {
        let port = self.config.port;
        let fail = |reason: String| HttpChallengeError::Listen { port, reason };
        let port16 = u16::try_from(port).map_err(|_| fail(format!("listen tcp: address {port}: invalid port")))?;
        match TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port16))).await {
            Ok(l) => Ok(l),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::AddrInUse | std::io::ErrorKind::PermissionDenied) => {
                Err(fail(format!("listen tcp :{port}: bind: {e}")))
            }
            Err(_) => TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port16)))
                .await
                .map_err(|e| fail(format!("listen tcp :{port}: bind: {e}"))),
        }
    }
}

#[async_trait]
impl NodeAttestor for HttpChallengeAttestor {
    fn name(&self) -> &str {
        PLUGIN_NAME
    }

    async fn payload(&self) -> Result<Vec<u8>, NodeAttestorError> {
        // A fixed port is free again before it is bound for this attempt.
        self.state().stop();
        let listener = self.listen().await.map_err(NodeAttestorError::plugin)?;
        let port = match self.config.advertised_port {
            0 => listener.local_addr().map(|a| i64::from(a.port())).unwrap_or_default(),
            p => p,
        };
        self.state().listener = Some(listener);
        let data = AttestationData { hostname: self.hostname.clone(), agentname: self.config.agentname.clone(), port };
        Ok(data.to_json())
    }

    async fn challenge(&self, challenge: &[u8]) -> Result<Vec<u8>, NodeAttestorError> {
        let challenge = Challenge::from_json(challenge)
            .map_err(|e| NodeAttestorError::plugin(HttpChallengeError::BadChallenge(e.to_string())))?;
        let mut state = self.state();
        let listener =
            state.listener.take().ok_or_else(|| NodeAttestorError::plugin(HttpChallengeError::NoListener))?;
        let path = challenge_path(&self.config.agentname);
        let task = tokio::spawn(serve(listener, path, challenge.nonce, SERVE_WINDOW));
        state.serving = Some(task.abort_handle());
        Ok(RESPONSE.to_vec())
    }
}

/// Serves `nonce` and a newline at `path` (after unescaping, any method), 404 elsewhere, for
/// `window`; connections still open then are closed with it.
async fn serve(listener: TcpListener, path: String, nonce: String, window: Duration) {
    let wanted = unescape_path(&path).unwrap_or(path);
    let answer = Arc::new(Answer { path: wanted, body: Bytes::from(format!("{nonce}\n")) });
    let mut connections = JoinSet::new();
    let _ = tokio::time::timeout(window, accept_all(&listener, &answer, &mut connections)).await;
}

/// The challenge path (unescaped) and what is served there.
#[derive(Debug)]
struct Answer {
    path: String,
    body: Bytes,
}

/// Accepts connections into `connections` until cancelled.
async fn accept_all(listener: &TcpListener, answer: &Arc<Answer>, connections: &mut JoinSet<()>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of descriptors, say: try again shortly rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let answer = answer.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let answer = answer.clone();
            async move { Ok::<_, std::convert::Infallible>(respond(&answer, req.uri().path())) }
        });
        connections.spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(IO_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(IO_TIMEOUT, conn).await;
        });
        // Reap finished connections so that the set does not grow.
        while connections.try_join_next().is_some() {}
    }
}

/// Go's `ServeMux` answer: the nonce at the challenge path, `404 page not found` elsewhere.
fn respond(answer: &Answer, path: &str) -> hyper::Response<Full<Bytes>> {
    let found = unescape_path(path).is_some_and(|p| p == answer.path);
    let (status, body) =
        if found { (200, answer.body.clone()) } else { (404, Bytes::from_static(b"404 page not found\n")) };
    hyper::Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header("X-Content-Type-Options", "nosniff")
        .body(Full::new(body))
        .expect("a static response builds")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn plugin(data: &str) -> PluginConfig {
        PluginConfig::built_in("NodeAttestor", PLUGIN_NAME, data).unwrap()
    }

    #[test]
    fn config_defaults_as_spire() {
        let c = HttpChallengeConfig::from_plugin(&plugin("")).unwrap();
        assert_eq!(c, HttpChallengeConfig { hostname: None, agentname: "default".into(), port: 0, advertised_port: 0 });
        let c = HttpChallengeConfig::from_plugin(&plugin("hostname = \"h\"\nagentname = \"a-\"\nport = 8080")).unwrap();
        assert_eq!(
            (c.hostname.as_deref(), c.agentname.as_str(), c.port, c.advertised_port),
            (Some("h"), "a-", 8080, 8080)
        );
        let c = HttpChallengeConfig::from_plugin(&plugin("port = 8080\nadvertised_port = 80")).unwrap();
        assert_eq!(c.advertised_port, 80);
        let err = HttpChallengeConfig::from_plugin(&plugin("agent_name = \"x\"")).unwrap_err().to_string();
        assert!(err.contains("unknown configuration key \"agent_name\""), "{err}");
        let a = HttpChallengeAttestor::from_config(c).unwrap();
        assert_eq!(a.hostname, machine_hostname().unwrap());
    }

    /// A raw HTTP/1.1 GET of `path` on 127.0.0.1:`port`; the whole response.
    async fn get(port: u16, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: h:{port}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    fn attestor(data: &str) -> HttpChallengeAttestor {
        HttpChallengeAttestor::from_config(HttpChallengeConfig::from_plugin(&plugin(data)).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn serves_the_nonce_only_after_the_challenge() {
        let a = attestor("hostname = \"node1.example.com\"\nagentname = \"a^\"");
        let payload = AttestationData::from_json(&a.payload().await.unwrap()).unwrap();
        assert_eq!((payload.hostname.as_str(), payload.agentname.as_str()), ("node1.example.com", "a^"));
        let port = u16::try_from(payload.port).unwrap();
        assert_ne!(port, 0, "a random port is advertised");
        let challenge = Challenge { nonce: "the-nonce".into() };
        assert_eq!(a.challenge(&challenge.to_json()).await.unwrap(), b"\n");
        // Go's server routes on the unescaped path.
        let ok = get(port, &challenge_path("a^")).await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\nthe-nonce\n"), "{ok}");
        let other = get(port, &challenge_path("default")).await;
        assert!(other.starts_with("HTTP/1.1 404 Not Found\r\n") && other.ends_with("404 page not found\n"), "{other}");
        // The attestor's end stops the server.
        drop(a);
        closes(port).await;
    }

    /// Waits (a little) for nothing to listen on `port` any more.
    async fn closes(port: u16) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            assert!(tokio::time::Instant::now() < deadline, "port {port} still served");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn advertised_port_and_refusals() {
        let a = attestor("hostname = \"h\"\nadvertised_port = 80");
        assert_eq!(AttestationData::from_json(&a.payload().await.unwrap()).unwrap().port, 80);
        let err = a.challenge(b"[").await.unwrap_err().to_string();
        assert!(err.starts_with("unable to unmarshal challenge: "), "{err}");
        let fresh = attestor("hostname = \"h\"");
        let err = fresh.challenge(&Challenge::default().to_json()).await.unwrap_err().to_string();
        assert_eq!(err, "failed to start webserver: no listener (challenge before payload)");
        let err = attestor("hostname = \"h\"\nport = 70000").payload().await.unwrap_err().to_string();
        assert_eq!(err, "could not listen on port 70000: listen tcp: address 70000: invalid port");
        // A port in use is refused with the port named.
        let taken =
            std::net::TcpListener::bind("[::]:0").or_else(|_| std::net::TcpListener::bind("0.0.0.0:0")).unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = attestor(&format!("hostname = \"h\"\nport = {port}")).payload().await.unwrap_err().to_string();
        assert!(err.starts_with(&format!("could not listen on port {port}: listen tcp :{port}: bind: ")), "{err}");
    }

    #[tokio::test]
    async fn serving_ends_with_its_window() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        serve(listener, challenge_path("default"), "n".into(), Duration::from_millis(100)).await;
        closes(port).await;
    }
}
