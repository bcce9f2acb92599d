//! The `oidc-discovery-provider` binary as an operator runs it: behind a reverse proxy on
//! `listen_socket_path` (a socket anyone may connect to) with the `file` source, following changes
//! to the bundle file; and refusing bad configurations with SPIRE's messages and exit status.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spire_identity::bundle::JwtAuthority;
use spire_identity::{Bundle, KeyType, PrivateKey, TrustDomain};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_oidc-discovery-provider");

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A SPIFFE bundle holding one fresh JWT authority `kid`.
fn write_bundle(path: &Path, kid: &str) {
    let mut bundle = Bundle::new(TrustDomain::parse("example.org").unwrap());
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let authority = JwtAuthority { key_id: kid.into(), public_key_der: key.public_key_der(), expires_at: 0 };
    bundle.add_jwt_authority(authority).unwrap();
    std::fs::write(path, bundle.to_spiffe_json()).unwrap();
}

/// `GET <path>` over the Unix socket: status line and body.
async fn get(socket: &Path, path: &str) -> std::io::Result<(String, String)> {
    let mut s = tokio::net::UnixStream::connect(socket).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: oidc.example.org\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).await?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    Ok((head.lines().next().unwrap_or("").to_owned(), body.to_owned()))
}

/// Polls `GET <path>` until `accept` takes the body.
async fn wait_for(socket: &Path, path: &str, accept: impl Fn(&str, &str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((status, body)) = get(socket, path).await
            && accept(&status, &body)
        {
            return body;
        }
        assert!(Instant::now() < deadline, "no acceptable answer on {path}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn serves_a_bundle_file_on_a_unix_socket_and_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, socket, conf) =
        (dir.path().join("bundle.json"), dir.path().join("oidc.sock"), dir.path().join("oidc.conf"));
    write_bundle(&bundle, "first");
    std::fs::write(
        &conf,
        format!(
            "domains = [\"oidc.example.org\"]\nlisten_socket_path = \"{}\"\nfile {{\n  path = \"{}\"\n  poll_interval = \"100ms\"\n}}\n",
            socket.display(),
            bundle.display()
        ),
    )
    .unwrap();
    // A stale socket file is replaced, as SPIRE does.
    std::fs::write(&socket, "stale").unwrap();
    let _p = Running(Command::new(BIN).arg("-config").arg(&conf).stderr(Stdio::null()).spawn().unwrap());

    let keys = wait_for(&socket, "/keys", |s, b| s.ends_with("200 OK") && b.contains("\"kid\": \"first\"")).await;
    assert!(keys.contains("\"alg\": \"ES256\""), "{keys}");
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o777);
    // Plain HTTP without allow_insecure_scheme: the document still says https.
    let doc = wait_for(&socket, "/.well-known/openid-configuration", |s, _| s.ends_with("200 OK")).await;
    assert!(doc.contains("\"issuer\": \"https://oidc.example.org\""), "{doc}");

    write_bundle(&bundle, "second");
    wait_for(&socket, "/keys", |_, b| b.contains("\"kid\": \"second\"") && !b.contains("\"first\"")).await;
}

/// Runs the binary on `conf` and returns its exit code and stderr.
fn refused(conf: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oidc.conf");
    std::fs::write(&path, conf).unwrap();
    let out = Command::new(BIN).arg("-config").arg(&path).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_configurations_are_refused_with_spires_messages() {
    let (code, err) = refused("insecure_addr = \":0\"\nserver_api { address = \"unix:///x\" }\n");
    assert_eq!(code, Some(1));
    assert!(err.contains("at least one domain must be configured"), "{err}");

    let acme = "domains = [\"d.test\"]\ninsecure_addr = \":0\"\nacme {\n email = \"a@d.test\"\n tos_accepted = true\n}\nserver_api { address = \"unix:///x\" }\n";
    let (code, err) = refused(acme);
    assert_eq!(code, Some(1));
    assert!(err.contains("insecure_addr and the acme section are mutually exclusive"), "{err}");

    let (code, err) =
        refused("domains = [\"Upper.test\"]\ninsecure_addr = \":0\"\nserver_api { address = \"unix:///x\" }\n");
    assert_eq!(code, Some(1));
    assert!(err.contains("domain \"Upper.test\" must already be punycode encoded"), "{err}");

    let out = Command::new(BIN).args(["-config", "/nonexistent/oidc.conf"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("unable to load configuration: open /nonexistent/oidc.conf: no such file or directory"),
        "{err}"
    );

    let out = Command::new(BIN).arg("-bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("flag provided but not defined: -bogus"));
}
