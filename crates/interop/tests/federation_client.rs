//! Our server's federation bundle client against a real SPIRE v1.13.3 server's bundle endpoint: our
//! server (`ours.test`) federates with SPIRE's `example.org` over `https_spiffe`, the relationship
//! made with our CLI (`federation create`) and bootstrapped with `bundle set` of SPIRE's X.509
//! authorities. `federation refresh` fetches SPIRE's bundle at once and our `bundle list` then shows
//! what SPIRE serves: its X.509 and JWT authorities and its refresh hint. (SPIRE fetching ours is
//! `crates/server/tests/federation_bundle_endpoint.rs`.)

use std::time::{Duration, Instant};

use serde_json::Value;
use spire_testkit::agent::{server_cli, try_server_cli};
use spire_testkit::peers;
use spire_testkit::process::{TestServer, free_port, server_conf};
use spire_testkit::upstream::{ServerOptions, UpstreamServer};

/// The SPIRE server's bundle endpoint on `port`, `https_spiffe`, publishing a 2 minute hint.
fn spire_endpoint(port: u16) -> String {
    format!(
        "federation {{\n bundle_endpoint {{\n address = \"127.0.0.1\"\n port = {port}\n refresh_hint = \"2m\"\n \
         profile \"https_spiffe\" {{}}\n }}\n }}"
    )
}

#[tokio::test]
async fn our_server_fetches_spire_bundle_over_https_spiffe() {
    let Some(spire) = peers::require("upstream-spire-server") else { return };
    let started = Instant::now();
    let ours_bin = peers::workspace_binary("spire-server");
    let port = free_port();
    let options = ServerOptions { extra_config: spire_endpoint(port), ..ServerOptions::default() };
    let mut upstream = UpstreamServer::start(spire, &options).await;
    let mut ours = TestServer::start_with_config(&ours_bin, |dir, server_port| {
        server_conf(dir, server_port, "").replace("\"example.org\"", "\"ours.test\"")
    })
    .await;
    let cli = |args: &[&str]| server_cli(&ours_bin, &ours, args);

    // Without a relationship there is nothing to refresh.
    let missing = try_server_cli(&ours_bin, &ours, &["federation", "refresh", "-id", "example.org"]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("there is no federation relationship with trust domain \"example.org\""), "{stderr}");

    // Bootstrap: SPIRE's X.509 authorities, as an operator copies them.
    let pem = ours.dir.join("example.org.pem");
    std::fs::write(&pem, upstream.cli(&["bundle", "show"])).unwrap();
    cli(&["bundle", "set", "-id", "spiffe://example.org", "-path", &pem.display().to_string()]);
    let url = format!("https://127.0.0.1:{port}");
    cli(&[
        "federation",
        "create",
        "-trustDomain",
        "example.org",
        "-bundleEndpointURL",
        &url,
        "-bundleEndpointProfile",
        "https_spiffe",
        "-endpointSpiffeID",
        "spiffe://example.org/spire/server",
    ]);

    // SPIRE starts its bundle endpoint shortly after its API socket: refresh until it answers.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = try_server_cli(&ours_bin, &ours, &["federation", "refresh", "-id", "example.org"]);
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Bundle refreshed");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "refresh: {}\nours: {}\nSPIRE: {}",
            String::from_utf8_lossy(&out.stderr),
            ours.log(),
            upstream.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let served: Value = serde_json::from_str(&upstream.cli(&["bundle", "show", "-format", "spiffe"])).unwrap();
    let stored: Value =
        serde_json::from_str(&cli(&["bundle", "list", "-id", "spiffe://example.org", "-format", "spiffe"])).unwrap();
    assert_eq!(stored["keys"], served["keys"], "ours stored: {stored}\nSPIRE serves: {served}");
    assert!(served["keys"].as_array().unwrap().iter().any(|k| k["use"] == "jwt-svid"), "{served}");
    assert_eq!(stored["spiffe_refresh_hint"], 120, "{stored}");
    // The X.509 authorities of `bundle list` in PEM are SPIRE's `bundle show`.
    let listed = cli(&["bundle", "list", "-id", "spiffe://example.org"]);
    assert_eq!(listed.trim(), upstream.cli(&["bundle", "show"]).trim());

    // The relationship is ours, the client's work visible in the log.
    assert!(ours.log().contains("Trust domain is now managed"), "{}", ours.log());
    eprintln!("federation_client: {:?}", started.elapsed());
    ours.stop();
    upstream.stop();
}
