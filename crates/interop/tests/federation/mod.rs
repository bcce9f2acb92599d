//! Two federated deployments on one machine for `federation_two_domains.rs`: per trust domain one of
//! our servers (serving its bundle endpoint), one of our agents and a workload entry for this
//! process's uid; the web PKI of the `https_web` endpoint, made by `openssl`; and the checks both
//! directions share (what a server stores, what a workload receives, TLS between the workloads).

// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

pub(crate) mod mtls;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use spiffe::{TrustDomain, X509Source};
use spire_identity::x509::certs_from_pem;
use spire_proto::spire::api::server::bundle::v1::AppendBundleRequest;
use spire_proto::spire::api::server::bundle::v1::bundle_client::BundleClient;
use spire_proto::spire::api::types::X509Certificate;
use spire_testkit::agent::{AgentOptions, TestAgent, generate_token, server_cli, try_server_cli};
use spire_testkit::openssl;
use spire_testkit::peers;
use spire_testkit::process::{TestServer, server_conf};

use crate::agent_server::{tail, uid_selector};

/// How long a step that needs no bundle refresh may take (processes starting, agents syncing).
pub(crate) const STEP: Duration = Duration::from_secs(30);

/// A leaf for `localhost`/127.0.0.1 (serverAuth) signed by `ca`, as `<name>.pem`/`<name>.key`.
pub(crate) fn web_leaf(dir: &Path, ca: &str, name: &str) {
    openssl::leaf_with(
        dir,
        ca,
        name,
        "ec",
        "1",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    );
}

/// The `server` block's `federation` block holding `blocks`.
pub(crate) fn federation(blocks: &[String]) -> String {
    format!("federation {{\n{}\n}}", blocks.join("\n"))
}

/// A `bundle_endpoint` block on 127.0.0.1:`port` with `profile` (a `profile "..." {...}` block) and
/// a 2 s refresh hint.
pub(crate) fn bundle_endpoint(port: u16, profile: &str) -> String {
    format!("bundle_endpoint {{\n address = \"127.0.0.1\"\n port = {port}\n refresh_hint = \"2s\"\n {profile}\n}}")
}

/// The `https_web` profile serving `<dir>/serving.pem` and `.key`, reread every second.
pub(crate) fn https_web_serving(dir: &Path) -> String {
    format!(
        "profile \"https_web\" {{\n serving_cert_file {{\n cert_file_path = \"{}\"\n key_file_path = \"{}\"\n \
         file_sync_interval = \"1s\"\n }}\n }}",
        dir.join("serving.pem").display(),
        dir.join("serving.key").display()
    )
}

/// A `federates_with` block for `td` at `url`, authenticated by the web PKI.
pub(crate) fn federates_with_web(td: &str, url: &str) -> String {
    format!(
        "federates_with \"{td}\" {{\n bundle_endpoint_url = \"{url}\"\n bundle_endpoint_profile \"https_web\" {{}}\n}}"
    )
}

/// `spire-server` behind a shell script that sets `env` first: `TestServer` starts a binary with
/// the test's own environment, and `SSL_CERT_FILE` must reach one server only.
pub(crate) fn binary_with_env(dir: &Path, binary: &Path, env: &[(&str, &str)]) -> PathBuf {
    let mut script = String::from("#!/bin/sh\n");
    for (key, value) in env {
        script.push_str(&format!("export {key}='{value}'\n"));
    }
    script.push_str(&format!("exec '{}' \"$@\"\n", binary.display()));
    let path = dir.join("spire-server-with-env");
    std::fs::write(&path, script).expect("write the wrapper");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod the wrapper");
    path
}

/// One trust domain: its server, its agent (once started) and the workload entry for this process.
#[derive(Debug)]
pub(crate) struct Domain {
    /// The trust domain's name, `td-a.test`.
    pub(crate) name: String,
    pub(crate) server: TestServer,
    pub(crate) agent: Option<TestAgent>,
    /// Where the server's bundle endpoint listens.
    pub(crate) endpoint_port: u16,
    cli_bin: PathBuf,
    agent_dir: tempfile::TempDir,
}

impl Domain {
    /// Starts our server (`launcher`: its binary, or a wrapper of it) for trust domain `name`, with
    /// `extra` in its `server` block.
    pub(crate) async fn start(name: &str, launcher: &Path, endpoint_port: u16, extra: &str) -> Self {
        let quoted = format!("\"{name}\"");
        let server = TestServer::start_with_config(launcher, |dir, port| {
            server_conf(dir, port, extra).replace("\"example.org\"", &quoted)
        })
        .await;
        Self {
            name: name.to_owned(),
            server,
            agent: None,
            endpoint_port,
            cli_bin: peers::workspace_binary("spire-server"),
            agent_dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// `spiffe://<name>`.
    pub(crate) fn id(&self) -> String {
        format!("spiffe://{}", self.name)
    }

    /// `spiffe://<name>/<path>`.
    pub(crate) fn workload(&self, path: &str) -> String {
        format!("spiffe://{}/{path}", self.name)
    }

    /// `spire-server <args>` against this server; its stdout, or a panic with its stderr.
    pub(crate) fn cli(&self, args: &[&str]) -> String {
        server_cli(&self.cli_bin, &self.server, args)
    }

    /// `spire-server <args>` against this server, whatever the outcome.
    pub(crate) fn try_cli(&self, args: &[&str]) -> Output {
        try_server_cli(&self.cli_bin, &self.server, args)
    }

    /// The X.509 authorities this server stores for `td` (its own trust domain or a federated one),
    /// sorted; empty if it has no bundle for it.
    pub(crate) fn stored_authorities(&self, td: &str) -> Vec<Vec<u8>> {
        let out = self.try_cli(&["bundle", "list", "-id", &format!("spiffe://{td}"), "-format", "pem"]);
        if !out.status.success() {
            return Vec::new();
        }
        let mut certs = certs_from_pem(&String::from_utf8_lossy(&out.stdout)).expect("PEM from bundle list");
        certs.sort();
        certs
    }

    /// This server's own X.509 authorities, sorted.
    pub(crate) fn own_authorities(&self) -> Vec<Vec<u8>> {
        let mut certs = certs_from_pem(&self.cli(&["bundle", "show", "-format", "pem"])).expect("PEM bundle");
        certs.sort();
        certs
    }

    /// `federation list -output json`'s relationships.
    pub(crate) fn relationships(&self) -> Vec<Value> {
        self.json_list(&["federation", "list"], "federation_relationships")
    }

    /// `bundle list -output json`'s federated bundles.
    pub(crate) fn federated_bundles(&self) -> Vec<Value> {
        self.json_list(&["bundle", "list"], "bundles")
    }

    /// The array `key` of `<args> -output json` (absent when empty, as protojson leaves it out).
    fn json_list(&self, args: &[&str], key: &str) -> Vec<Value> {
        let text = self.cli(&[args, &["-output", "json"]].concat());
        let out: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"));
        out[key].as_array().cloned().unwrap_or_default()
    }

    /// Appends `root` (DER) to this server's own bundle with the Bundle API's AppendBundle, as a new
    /// root of the trust domain is published ahead of a CA rotating to it.
    pub(crate) async fn append_authority(&self, root: &[u8]) {
        let request = AppendBundleRequest {
            x509_authorities: vec![X509Certificate { asn1: root.to_vec(), ..X509Certificate::default() }],
            ..AppendBundleRequest::default()
        };
        BundleClient::new(self.server.channel().await).append_bundle(request).await.expect("AppendBundle");
    }

    /// Registers `workload` (this process's uid) under a join-token agent of this trust domain,
    /// federated with `federates_with`, and starts that agent (syncing every 200 ms).
    pub(crate) async fn start_agent(&mut self, workload: &str, federates_with: &str) {
        let token = generate_token(&self.cli_bin, &self.server);
        let parent = self.workload(&format!("spire/agent/join_token/{token}"));
        let (selector, federated) = (uid_selector(), format!("spiffe://{federates_with}"));
        let entry = ["entry", "create", "-parentID", &parent, "-spiffeID", workload, "-selector", &selector];
        self.cli(&[&entry[..], &["-federatesWith", &federated]].concat());
        let options = AgentOptions {
            discover_workload_path: false,
            // Repeated keys override the earlier ones: the test config's trust domain is replaced.
            extra_config: format!("    trust_domain = \"{}\"\n", self.name),
            ..AgentOptions::with_token(&token)
        };
        let agent_bin = peers::workspace_binary("spire-agent");
        self.agent = Some(TestAgent::start(&agent_bin, self.agent_dir.path(), self.server.port, &options).await);
    }

    /// The agent's Workload API endpoint, `unix:<socket>`.
    pub(crate) fn endpoint(&self) -> String {
        self.agent.as_ref().expect("the agent runs").endpoint()
    }

    /// The agent's socket path.
    pub(crate) fn socket(&self) -> &Path {
        &self.agent.as_ref().expect("the agent runs").socket
    }

    /// The tails of this domain's server and agent logs.
    pub(crate) fn logs(&self) -> String {
        let agent = self.agent.as_ref().map(|a| tail(&a.log())).unwrap_or_default();
        format!("--- {} server ---\n{}\n--- {} agent ---\n{agent}", self.name, tail(&self.server.log()), self.name)
    }
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `timeout`; panics with `what`,
/// the last `Err` and `logs()` otherwise. Returns the value and how long it took.
pub(crate) async fn wait_until<T>(
    what: &str,
    timeout: Duration,
    logs: impl Fn() -> String,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> (T, Duration) {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < timeout {
        match check().await {
            Ok(value) => return (value, start.elapsed()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within {timeout:?} ({last})\n{}", logs());
}

/// The sorted X.509 authorities `source` (streaming the Workload API) holds for `td`.
pub(crate) fn source_authorities(source: &X509Source, td: &str) -> Vec<Vec<u8>> {
    let td = TrustDomain::new(td).expect("trust domain");
    let mut certs: Vec<Vec<u8>> = source
        .try_bundle_for_trust_domain(&td)
        .map(|b| b.authorities().iter().map(|c| c.as_bytes().to_vec()).collect())
        .unwrap_or_default();
    certs.sort();
    certs
}

/// An X509Source streaming the Workload API at `endpoint`, once it has an SVID for this process.
pub(crate) async fn x509_source(endpoint: &str) -> X509Source {
    X509Source::builder().endpoint(endpoint).build().await.expect("X509Source")
}

/// A fresh self-signed root made by `openssl` in `dir`, as DER.
pub(crate) fn new_root(dir: &Path, name: &str) -> Vec<u8> {
    openssl::ca(dir, name);
    let pem = std::fs::read_to_string(dir.join(format!("{name}.pem"))).expect("the root's PEM");
    certs_from_pem(&pem).expect("PEM").remove(0)
}
