//! mTLS between two workloads of different trust domains, each trusting the other's bundle only
//! through its own agent's Workload API: on our side rustls with spiffe-rustls over rust-spiffe's
//! `X509Source`, on the other go-spiffe (`go-spiffe-workload mtls-serve` / `mtls-dial`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use serde_json::Value;
use spiffe::X509Source;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::agent_server::names_dns;
use crate::peer_clients::run_peer;

/// What one side of an exchange saw: the peer's SPIFFE ID and the message it got.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Exchange {
    pub(crate) peer: String,
    pub(crate) message: String,
}

/// `go-spiffe-workload` if it is installed and knows `mtls-serve`/`mtls-dial` (an older build in
/// the peers' cache does not: `scripts/install-peers.sh go-spiffe` rebuilds it); `None` after
/// printing that the test is skipped, or a panic when peers are required.
pub(crate) fn go_workload() -> Option<PathBuf> {
    let program = spire_testkit::peers::require("go-spiffe-workload")?;
    let out = run_peer(&program, &["mtls-dial", "-timeout", "1s"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("unknown command") {
        assert!(
            !spire_testkit::peers::required(),
            "go-spiffe-workload predates mtls-dial and SPIRE_REQUIRE_PEERS=1: run scripts/install-peers.sh go-spiffe"
        );
        eprintln!("skipped: go-spiffe-workload predates mtls-dial (run scripts/install-peers.sh go-spiffe)");
        return None;
    }
    Some(program)
}

/// Runs go-spiffe-workload `args` off the async runtime: the JSON it printed, or its error output.
async fn run_go(program: &Path, args: Vec<String>) -> Result<Value, String> {
    let program = program.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_peer(&program, &args, &[])
    })
    .await
    .expect("the go-spiffe-workload runner");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).ok_or_else(|| format!("no JSON: {stdout}"))?;
    serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))
}

/// A string member of go-spiffe-workload's JSON.
fn member(json: &Value, key: &str) -> String {
    json[key].as_str().unwrap_or_else(|| panic!("no {key:?} in {json}")).to_owned()
}

/// go-spiffe serves one mTLS connection on 127.0.0.1:`port` as `own_id` (from the agent at
/// `socket`), accepting only `peer_id`; what it saw, or its error.
pub(crate) async fn go_serve(
    program: &Path,
    socket: &Path,
    port: u16,
    own_id: &str,
    peer_id: &str,
) -> Result<Exchange, String> {
    let args = ["mtls-serve", "-timeout", "20s", "-socket"].map(str::to_owned);
    let mut args = args.to_vec();
    args.push(socket.display().to_string());
    args.extend(["-listen".into(), format!("127.0.0.1:{port}"), "-id".into(), own_id.into()]);
    args.extend(["-peer-id".into(), peer_id.into()]);
    let json = run_go(program, args).await?;
    Ok(Exchange { peer: member(&json, "peer_saw"), message: member(&json, "received") })
}

/// go-spiffe dials `addr` over mTLS as `own_id` (from the agent at `socket`), accepting only a
/// server presenting `peer_id`, and sends `ping`; what it saw, or its error.
pub(crate) async fn go_dial(
    program: &Path,
    socket: &Path,
    addr: SocketAddr,
    own_id: &str,
    peer_id: &str,
) -> Result<Exchange, String> {
    let mut args = ["mtls-dial", "-timeout", "20s", "-socket"].map(str::to_owned).to_vec();
    args.push(socket.display().to_string());
    args.extend(["-addr".into(), addr.to_string(), "-id".into(), own_id.into(), "-peer-id".into(), peer_id.into()]);
    let json = run_go(program, args).await?;
    Ok(Exchange { peer: member(&json, "peer_saw"), message: member(&json, "reply") })
}

/// The peer certificate's SPIFFE ID, if it is `expected` (a URI SAN's bytes appear as such).
fn peer_named(certs: Option<&[rustls::pki_types::CertificateDer<'_>]>, expected: &str) -> String {
    match certs.and_then(<[_]>::first) {
        Some(leaf) if names_dns(leaf.as_ref(), expected) => expected.to_owned(),
        Some(_) => "another SPIFFE ID".to_owned(),
        None => "no certificate".to_owned(),
    }
}

/// rustls (spiffe-rustls, trust from `source`) dials 127.0.0.1:`port` accepting only `peer_id`,
/// retrying the TCP connection until the server listens (up to 20 s), and sends `ping`: what it saw,
/// or why the exchange failed.
pub(crate) async fn rust_dial(source: &X509Source, port: u16, peer_id: &str) -> Result<Exchange, String> {
    let authorizer = spiffe_rustls::authorizer::exact([peer_id]).map_err(|e| e.to_string())?;
    let config = spiffe_rustls::mtls_client(source.clone()).authorize(authorizer).build().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let tcp = loop {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(tcp) => break tcp,
            Err(e) if Instant::now() > deadline => return Err(format!("connect: {e}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let name = ServerName::try_from("127.0.0.1").expect("an IP address");
    let mut tls = TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| e.to_string())?;
    let peer = peer_named(tls.get_ref().1.peer_certificates(), peer_id);
    tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    tls.read_to_end(&mut reply).await.map_err(|e| e.to_string())?;
    Ok(Exchange { peer, message: String::from_utf8_lossy(&reply).into_owned() })
}

/// rustls (spiffe-rustls, trust from `source`) listens on loopback accepting only `peer_id`; returns
/// the address and the task answering one connection's first message with `echo:<message>`.
pub(crate) async fn rust_serve(
    source: &X509Source,
    peer_id: &str,
) -> (SocketAddr, tokio::task::JoinHandle<Result<Exchange, String>>) {
    let authorizer = spiffe_rustls::authorizer::exact([peer_id]).expect("a SPIFFE ID");
    let config = spiffe_rustls::mtls_server(source.clone()).authorize(authorizer).build().expect("server config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let peer_id = peer_id.to_owned();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = TlsAcceptor::from(Arc::new(config)).accept(tcp).await.map_err(|e| e.to_string())?;
        let peer = peer_named(tls.get_ref().1.peer_certificates(), &peer_id);
        let mut buf = [0u8; 64];
        let n = tls.read(&mut buf).await.map_err(|e| e.to_string())?;
        tls.write_all(&[b"echo:", &buf[..n]].concat()).await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())?;
        Ok(Exchange { peer, message: String::from_utf8_lossy(&buf[..n]).into_owned() })
    });
    (addr, task)
}
