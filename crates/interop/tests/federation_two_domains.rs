//! Two full deployments on one machine, `td-a.test` and `td-b.test` (each one of our servers, one of
//! our agents and a workload registered `-federatesWith` the other), federated both ways:
//!
//! - td-a fetches td-b's bundle over `https_spiffe`, a relationship made with our CLI (`federation
//!   create -trustDomainBundlePath`, td-b's bundle as the bootstrap);
//! - td-b fetches td-a's over `https_web`, a relationship of its HCL `federates_with` block; td-a's
//!   endpoint serves a certificate from a test CA made by `openssl`, which td-b's server trusts
//!   through `SSL_CERT_FILE`.
//!
//! Each workload gets the other trust domain's bundle through the Workload API, and the two do mTLS
//! (rustls with spiffe-rustls in td-a, go-spiffe in td-b), each accepting only the other's SPIFFE
//! ID. A root added to either trust domain reaches the other's server and workload on the refresh
//! schedule, with no manual refresh; an endpoint with the wrong SPIFFE ID or an untrusted
//! certificate is refused and the stored bundle kept. Bad relationships given to our CLI are refused
//! with clear errors and store nothing.

mod agent_server;
mod federation;
mod peer_clients;

use std::path::Path;
use std::time::{Duration, Instant};

use federation::mtls::{self, Exchange};
use federation::{
    Domain, STEP, binary_with_env, bundle_endpoint, federates_with_web, federation, https_web_serving, new_root,
    source_authorities, wait_until, web_leaf, x509_source,
};
use serde_json::Value;
use spiffe::{JwtSvid, WorkloadApiClient};
use spire_testkit::openssl;
use spire_testkit::peers;
use spire_testkit::process::{TestServer, free_port};
use spire_testkit::upstream::{ServerOptions, UpstreamServer};

const TD_A: &str = "td-a.test";
const TD_B: &str = "td-b.test";
const WORKLOAD_A: &str = "spiffe://td-a.test/front";
const WORKLOAD_B: &str = "spiffe://td-b.test/back";
const SERVER_B: &str = "spiffe://td-b.test/spire/server";

/// The refresh hint a server fetching a 2 s hint goes by: SPIRE's bundle client raises hints below a
/// minute to one minute, and fetches four times per hint (every 15 s here).
const EFFECTIVE_REFRESH_HINT: Duration = Duration::from_secs(60);

/// Both deployments, started and federated: td-a's CLI relationship to td-b made and td-b's HCL one
/// to td-a fetched, both agents serving their workload. `pki` receives the web PKI.
async fn federated_pair(pki: &Path) -> (Domain, Domain) {
    openssl::ca(pki, "web-ca");
    web_leaf(pki, "web-ca", "serving");
    let server_bin = peers::workspace_binary("spire-server");
    let (port_a, port_b) = (free_port(), free_port());
    let conf_a = federation(&[bundle_endpoint(port_a, &https_web_serving(pki))]);
    let conf_b = federation(&[
        bundle_endpoint(port_b, "profile \"https_spiffe\" {}"),
        federates_with_web(TD_A, &format!("https://localhost:{port_a}")),
    ]);
    let web_ca = pki.join("web-ca.pem").display().to_string();
    let launcher_b = binary_with_env(pki, &server_bin, &[("SSL_CERT_FILE", &web_ca)]);
    let (mut a, mut b) = tokio::join!(
        Domain::start(TD_A, &server_bin, port_a, &conf_a),
        Domain::start(TD_B, &launcher_b, port_b, &conf_b)
    );

    // td-a: the relationship through the CLI, bootstrapped with td-b's bundle as a file.
    let bootstrap = pki.join("td-b.pem");
    std::fs::write(&bootstrap, b.cli(&["bundle", "show"])).unwrap();
    let url_b = format!("https://127.0.0.1:{port_b}");
    let created = a.cli(&[
        "federation",
        "create",
        "-trustDomain",
        TD_B,
        "-bundleEndpointURL",
        &url_b,
        "-bundleEndpointProfile",
        "https_spiffe",
        "-endpointSpiffeID",
        SERVER_B,
        "-trustDomainBundlePath",
        &bootstrap.display().to_string(),
    ]);
    assert!(created.contains(TD_B), "{created}");
    assert_eq!(a.stored_authorities(TD_B), b.own_authorities(), "the bootstrap bundle is stored at once");

    // Both servers fetch on their own: td-a's stored bundle gets the refresh hint td-b serves, and
    // td-b gets td-a's (its server starts fetching before td-a's endpoint may be up, so refresh).
    let logs = || format!("{}\n{}", a.logs(), b.logs());
    wait_until("td-a fetches td-b's bundle", STEP, logs, async || fetched(&a, TD_B)).await;
    wait_until("td-b fetches td-a's bundle over https_web", STEP, logs, async || {
        let _ = b.try_cli(&["federation", "refresh", "-id", &a.id()]);
        fetched(&b, TD_A)
    })
    .await;
    assert_eq!(b.stored_authorities(TD_A), a.own_authorities());
    assert_eq!(a.stored_authorities(TD_B), b.own_authorities());

    tokio::join!(a.start_agent(WORKLOAD_A, TD_B), b.start_agent(WORKLOAD_B, TD_A));
    (a, b)
}

/// Whether `domain` stores a bundle for `td` that came from td's endpoint (it carries the 2 s
/// refresh hint that endpoint publishes; a bootstrap bundle from a PEM file has none).
fn fetched(domain: &Domain, td: &str) -> Result<(), String> {
    let out = domain.try_cli(&["bundle", "list", "-id", &format!("spiffe://{td}"), "-format", "spiffe"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let doc: Value = serde_json::from_str(&text).map_err(|_| format!("no bundle: {text}"))?;
    if doc["spiffe_refresh_hint"] == 2 { Ok(()) } else { Err(format!("stored: {doc}")) }
}

/// Waits until the workload of `domain` receives `expected` as `td`'s X.509 bundle, streamed to an
/// `X509Source`.
async fn workload_receives(domain: &Domain, source: &spiffe::X509Source, td: &str, expected: &[Vec<u8>]) -> Duration {
    let what = format!("{}'s workload receives {td}'s bundle", domain.name);
    let logs = || domain.logs();
    let check = async || {
        let got = source_authorities(source, td);
        if got == expected { Ok(()) } else { Err(format!("{} authorities, expected {}", got.len(), expected.len())) }
    };
    wait_until(&what, EFFECTIVE_REFRESH_HINT, logs, check).await.1
}

#[tokio::test]
async fn two_deployments_federate_both_ways() {
    let Some(go) = mtls::go_workload() else { return };
    let pki = tempfile::tempdir().unwrap();
    let pki = pki.path();
    let started = Instant::now();
    let (a, b) = federated_pair(pki).await;
    eprintln!("both deployments federated and serving in {:?}", started.elapsed());

    // Each workload receives the other trust domain's bundle through its own agent.
    let (endpoint_a, endpoint_b) = (a.endpoint(), b.endpoint());
    let (source_a, source_b) = tokio::join!(x509_source(&endpoint_a), x509_source(&endpoint_b));
    workload_receives(&a, &source_a, TD_B, &b.own_authorities()).await;
    workload_receives(&b, &source_b, TD_A, &a.own_authorities()).await;
    assert_eq!(source_a.svid().unwrap().spiffe_id().to_string(), WORKLOAD_A);
    assert_eq!(source_b.svid().unwrap().spiffe_id().to_string(), WORKLOAD_B);

    // A JWT-SVID of td-a validates in td-b, by the JWT authorities td-b fetched from td-a's endpoint:
    // locally (rust-spiffe) and through td-b's agent.
    let (client_a, client_b) =
        tokio::join!(WorkloadApiClient::connect_to(&endpoint_a), WorkloadApiClient::connect_to(&endpoint_b));
    let (client_a, client_b) = (client_a.unwrap(), client_b.unwrap());
    let jwt = client_a.fetch_jwt_svid(&[WORKLOAD_B], None).await.unwrap();
    let jwt_bundles_b = client_b.fetch_jwt_bundles().await.unwrap();
    let local = JwtSvid::parse_and_validate(jwt.token(), &jwt_bundles_b, &[WORKLOAD_B]).unwrap();
    assert_eq!(local.spiffe_id().to_string(), WORKLOAD_A);
    let remote = client_b.validate_jwt_token(WORKLOAD_B, jwt.token()).await.unwrap();
    assert_eq!(remote.spiffe_id().to_string(), WORKLOAD_A);

    // mTLS across trust domains, both ways round: go-spiffe serving in td-b, rustls dialing from td-a...
    let port = free_port();
    let (served, dialed) = tokio::join!(
        mtls::go_serve(&go, b.socket(), port, WORKLOAD_B, WORKLOAD_A),
        mtls::rust_dial(&source_a, port, WORKLOAD_B)
    );
    assert_eq!(served.unwrap(), Exchange { peer: WORKLOAD_A.into(), message: "ping".into() });
    assert_eq!(dialed.unwrap(), Exchange { peer: WORKLOAD_B.into(), message: "echo:ping".into() });
    // ... and rustls serving in td-a, go-spiffe dialing from td-b.
    let (addr, server) = mtls::rust_serve(&source_a, WORKLOAD_B).await;
    let dialed = mtls::go_dial(&go, b.socket(), addr, WORKLOAD_B, WORKLOAD_A).await;
    assert_eq!(dialed.unwrap(), Exchange { peer: WORKLOAD_A.into(), message: "echo:ping".into() });
    assert_eq!(server.await.unwrap().unwrap(), Exchange { peer: WORKLOAD_B.into(), message: "ping".into() });

    // Each side refuses a peer other than the one it expects.
    let port = free_port();
    let (served, dialed) = tokio::join!(
        mtls::go_serve(&go, b.socket(), port, WORKLOAD_B, WORKLOAD_A),
        mtls::rust_dial(&source_a, port, "spiffe://td-b.test/someone-else")
    );
    let refused = dialed.expect_err("rustls accepted a server it does not expect");
    assert!(served.is_err(), "go-spiffe's server completed a refused exchange: {served:?}");
    eprintln!("rustls refusing td-b's workload as someone else: {refused}");
    let port = free_port();
    let (served, dialed) = tokio::join!(
        mtls::go_serve(&go, b.socket(), port, WORKLOAD_B, "spiffe://td-a.test/someone-else"),
        mtls::rust_dial(&source_a, port, WORKLOAD_B)
    );
    let refused = served.expect_err("go-spiffe accepted a client it does not expect");
    assert!(refused.contains("unexpected ID"), "{refused}");
    assert!(dialed.is_err(), "rustls completed an exchange go-spiffe refused: {dialed:?}");
    let (addr, server) = mtls::rust_serve(&source_a, WORKLOAD_B).await;
    let refused = mtls::go_dial(&go, b.socket(), addr, WORKLOAD_B, "spiffe://td-a.test/someone-else").await;
    assert!(refused.expect_err("go-spiffe accepted a server it does not expect").contains("unexpected ID"));
    assert!(server.await.unwrap().is_err(), "rustls's server completed a refused exchange");

    // A new root in each trust domain reaches the other's server and workload on the refresh schedule.
    let (root_a, root_b) = (new_root(pki, "td-a-next"), new_root(pki, "td-b-next"));
    tokio::join!(a.append_authority(&root_a), b.append_authority(&root_b));
    let appended = Instant::now();
    let (own_a, own_b) = (a.own_authorities(), b.own_authorities());
    assert!(own_a.contains(&root_a) && own_b.contains(&root_b));
    let stored = |domain: &Domain, td: &str, expected: &[Vec<u8>]| {
        let got = domain.stored_authorities(td);
        if got == expected { Ok(()) } else { Err(format!("{} authorities stored", got.len())) }
    };
    let logs = || format!("{}\n{}", a.logs(), b.logs());
    let ((_, a_stored), (_, b_stored)) = tokio::join!(
        wait_until("td-a stores td-b's new root", EFFECTIVE_REFRESH_HINT, logs, async || stored(&a, TD_B, &own_b)),
        wait_until("td-b stores td-a's new root", EFFECTIVE_REFRESH_HINT, logs, async || stored(&b, TD_A, &own_a)),
    );
    tokio::join!(workload_receives(&a, &source_a, TD_B, &own_b), workload_receives(&b, &source_b, TD_A, &own_a));
    eprintln!(
        "new roots stored {a_stored:?} (td-a, over https_spiffe) and {b_stored:?} (td-b, over https_web) after the \
         append; in both workloads after {:?}",
        appended.elapsed()
    );
    assert!(appended.elapsed() < EFFECTIVE_REFRESH_HINT, "not within one refresh hint");

    refuses_wrong_endpoints(&a, &b, pki).await;
}

/// The wrong SPIFFE ID (td-a's relationship changed to expect another) and an untrusted certificate
/// (td-b's endpoint fetched as `https_web`; td-a's endpoint serving a certificate from a CA td-b
/// does not trust) are refused by `federation refresh`, and the stored bundle is kept though the
/// endpoint now serves a new root; the right relationship back, the refresh takes it.
async fn refuses_wrong_endpoints(a: &Domain, b: &Domain, pki: &Path) {
    let third_b = new_root(pki, "td-b-third");
    b.append_authority(&third_b).await;
    let kept = a.stored_authorities(TD_B);
    assert!(!kept.contains(&third_b));
    let url_b = format!("https://127.0.0.1:{}", b.endpoint_port);
    let update = |profile: &[&str]| {
        let args = ["federation", "update", "-trustDomain", TD_B, "-bundleEndpointURL", &url_b];
        a.cli(&[&args[..], profile].concat());
    };
    let refresh_b = || a.try_cli(&["federation", "refresh", "-id", &b.id()]);
    for (profile, why) in [
        (
            &["-bundleEndpointProfile", "https_spiffe", "-endpointSpiffeID", "spiffe://td-b.test/not-the-server"][..],
            "wrong SPIFFE ID",
        ),
        (&["-bundleEndpointProfile", "https_web"][..], "certificate no web CA vouches for"),
    ] {
        update(profile);
        let out = refresh_b();
        assert!(!out.status.success(), "td-a took td-b's bundle from an endpoint with a {why}");
        eprintln!("{why}: {}", String::from_utf8_lossy(&out.stderr).trim());
        assert_eq!(a.stored_authorities(TD_B), kept, "{why}: the old bundle is kept");
    }
    update(&["-bundleEndpointProfile", "https_spiffe", "-endpointSpiffeID", SERVER_B]);
    let out = refresh_b();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(a.stored_authorities(TD_B).contains(&third_b));

    // td-a's endpoint moves to a certificate from a CA td-b does not trust (reread within a second).
    openssl::ca(pki, "other-ca");
    web_leaf(pki, "other-ca", "untrusted");
    std::fs::copy(pki.join("untrusted.key"), pki.join("serving.key")).unwrap();
    std::fs::copy(pki.join("untrusted.pem"), pki.join("serving.pem")).unwrap();
    let refresh_a = || b.try_cli(&["federation", "refresh", "-id", &a.id()]);
    let logs = || format!("{}\n{}", a.logs(), b.logs());
    let check = async || if refresh_a().status.success() { Err("refreshed".to_owned()) } else { Ok(()) };
    wait_until("td-b refuses td-a's untrusted certificate", STEP, logs, check).await;
    let kept = b.stored_authorities(TD_A);
    let third_a = new_root(pki, "td-a-third");
    a.append_authority(&third_a).await;
    let out = refresh_a();
    assert!(!out.status.success(), "td-b took td-a's bundle from an endpoint it does not trust");
    eprintln!("untrusted web certificate: {}", String::from_utf8_lossy(&out.stderr).trim());
    assert_eq!(b.stored_authorities(TD_A), kept, "the old bundle is kept");
}

/// A relationship our CLI must refuse, and how our error compares with SPIRE's for the same input.
struct BadRelationship {
    why: &'static str,
    /// `federation create` flags.
    flags: Vec<String>,
    /// The start of the error (stdout and stderr) SPIRE v1.13.3 prints too; the whole of it where
    /// `None` (after it the JSON and PEM parsers' own words differ).
    same_up_to: Option<&'static str>,
}

/// The bad relationships, with their files written to `dir`: an endpoint that is not https, the
/// server's own trust domain, and bundle files that are missing or malformed (PEM; SPIFFE truncated,
/// or with an x5c that is no certificate).
fn bad_relationships(dir: &Path) -> Vec<BadRelationship> {
    let file = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).unwrap();
        dir.join(name).display().to_string()
    };
    let not_pem = file("not-a-block.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
    let truncated = file("truncated.json", "{\"keys\": [");
    let bad_x5c =
        file("bad-x5c.json", "{\"keys\":[{\"use\":\"x509-svid\",\"kty\":\"EC\",\"x5c\":[\"bm90IGEgY2VydA==\"]}]}");
    let relationship = |td: &str, url: &str, rest: &[&str]| {
        let flags = ["-trustDomain", td, "-bundleEndpointURL", url];
        flags.iter().chain(rest).map(|f| (*f).to_owned()).collect()
    };
    let web = ["-bundleEndpointProfile", "https_web"];
    let with_bundle = |path: &str, format: &str| {
        let flags = ["-bundleEndpointProfile", "https_spiffe", "-endpointSpiffeID", SERVER_B, "-trustDomainBundlePath"];
        let flags = [&flags[..], &[path, "-trustDomainBundleFormat", format]].concat();
        relationship(TD_B, "https://127.0.0.1:8443", &flags)
    };
    let parse_error = Some("Error: cannot parse bundle file: unable to parse");
    vec![
        BadRelationship {
            why: "not https",
            flags: relationship(TD_B, "http://127.0.0.1:8443", &web),
            same_up_to: None,
        },
        BadRelationship {
            why: "own trust domain",
            flags: relationship(TD_A, "https://127.0.0.1:8443", &web),
            same_up_to: None,
        },
        BadRelationship {
            why: "missing bundle file",
            flags: with_bundle("/nonexistent/bundle.pem", "pem"),
            same_up_to: None,
        },
        BadRelationship { why: "malformed PEM bundle", flags: with_bundle(&not_pem, "pem"), same_up_to: parse_error },
        BadRelationship {
            why: "truncated SPIFFE bundle",
            flags: with_bundle(&truncated, "spiffe"),
            same_up_to: parse_error,
        },
        BadRelationship {
            why: "SPIFFE bundle with an x5c that is no certificate",
            flags: with_bundle(&bad_x5c, "spiffe"),
            same_up_to: parse_error,
        },
    ]
}

/// `federation create <flags>` against the server at `socket` with the CLI `binary`: its exit
/// success and everything it printed.
fn create(binary: &Path, socket: &Path, flags: &[String]) -> (bool, String) {
    let out = std::process::Command::new(binary)
        .args(["federation", "create", "-socketPath"])
        .arg(socket)
        .args(flags)
        .output()
        .expect("run spire-server");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Bad relationships given to our CLI are refused with SPIRE's errors (compared with SPIRE v1.13.3's
/// own server and CLI when installed), and nothing is stored: no relationship, no bundle.
#[tokio::test]
async fn bad_relationships_are_refused_and_nothing_stored() {
    let server_bin = peers::workspace_binary("spire-server");
    let a = Domain::start(TD_A, &server_bin, free_port(), "").await;
    let spire_bin = peers::find("upstream-spire-server");
    assert!(spire_bin.is_some() || !peers::required(), "SPIRE's server is missing and SPIRE_REQUIRE_PEERS=1");
    let spire = match &spire_bin {
        Some(bin) => Some(
            TestServer::start_with_config(bin, |dir, port| {
                UpstreamServer::config(dir, port, &ServerOptions::default()).replace("\"example.org\"", "\"td-a.test\"")
            })
            .await,
        ),
        None => {
            eprintln!("SPIRE's server is not installed: our errors are not compared with its own");
            None
        }
    };
    let files = tempfile::tempdir().unwrap();
    for case in bad_relationships(files.path()) {
        let (accepted, ours) = create(&server_bin, &a.server.socket, &case.flags);
        assert!(!accepted, "{}: accepted\n{ours}", case.why);
        eprintln!("{}: {}", case.why, ours.trim());
        if let (Some(bin), Some(spire)) = (&spire_bin, &spire) {
            let (accepted, theirs) = create(bin, &spire.socket, &case.flags);
            assert!(!accepted, "{}: SPIRE accepted it\n{theirs}", case.why);
            match case.same_up_to {
                None => assert_eq!(ours, theirs, "{}", case.why),
                Some(start) => assert!(
                    ours.starts_with(start) && theirs.starts_with(start),
                    "{}: ours {ours:?}, SPIRE's {theirs:?}",
                    case.why
                ),
            }
        }
    }
    assert!(a.relationships().is_empty(), "a relationship was stored: {:?}", a.relationships());
    assert!(a.federated_bundles().is_empty(), "a bundle was stored: {:?}", a.federated_bundles());
}
