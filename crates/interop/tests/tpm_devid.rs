//! The tpm_devid node attestor end to end against a software TPM (`swtpm`) the test starts and
//! provisions with `tpm2-tools` and `openssl`: an EK certificate from a test manufacturer CA in the
//! EK certificate index, a DevID key under SPIRE's storage root key template, a DevID certificate
//! from a test DevID CA. For each pairing of our server and agent with SPIRE v1.13.3's: attestation
//! (possession of the DevID key, credential activation binding the AK to the EK), the agent ID and
//! selectors as the server shows them, and a workload under a node alias on those selectors
//! getting its SVID. Then the refusals: a DevID certificate of another CA, an expired one, a DevID
//! key from another TPM than the one the agent uses, and (from a forger in this process) the AK of
//! one TPM presented with the EK of another; each refused, no agent created.

mod agent_server;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use agent_server::{AgentUnderTest, OurAgent, OurServer, ServerSetup, ServerUnderTest};
use spire_agent::node::attest;
use spire_agent::node_attestor::tpm_devid::session::{Passwords, Session};
use spire_agent::node_attestor::{NodeAttestor, NodeAttestorError};
use spire_agent::server_client::ServerClient;
use spire_attestation::tpm_devid::{AttestationRequest, ChallengeRequest, ChallengeResponse};
use spire_identity::{BundleSet, KeyType, PrivateKey};
use spire_testkit::agent::AgentOptions;
use spire_testkit::openssl::{ca as openssl_ca, issue_for_key as openssl_issue, sha1_fingerprint};
use spire_testkit::swtpm::{DevIdFiles, DevIdKind, Swtpm};
use spire_testkit::upstream::{UpstreamAgent, UpstreamServer};

/// A provisioned TPM, its CAs and a DevID with its certificate, in `dir`.
struct Node {
    tpm: Swtpm,
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    devid: DevIdFiles,
    cert: PathBuf,
}

/// A fresh TPM with an EK certificate from `manufacturer` and a DevID of `kind` certified (CN
/// `node`) by `devid-ca`; `None` when swtpm is missing.
fn provision(node: &str, kind: DevIdKind) -> Option<Node> {
    let tpm = Swtpm::start()?;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_owned();
    openssl_ca(&dir, "manufacturer");
    openssl_ca(&dir, "devid-ca");
    tpm.provision_ek(&dir, "manufacturer");
    let devid = tpm.create_devid(&dir, "devid", kind, "");
    let cert = dir.join("devid.pem");
    openssl_issue(&dir, "devid-ca", &devid.public_pem, node, "1", &cert);
    Some(Node { tpm, _tmp: tmp, dir, devid, cert })
}

fn server_setup(dir: &Path) -> ServerSetup {
    let plugin = format!(
        "    NodeAttestor \"tpm_devid\" {{\n        plugin_data {{\n            devid_ca_path = \"{}\"\n            endorsement_ca_path = \"{}\"\n        }}\n    }}\n",
        dir.join("devid-ca.pem").display(),
        dir.join("manufacturer.pem").display()
    );
    ServerSetup { extra_plugins: plugin, ..ServerSetup::default() }
}

fn agent_options(device: &Path, cert: &Path, devid: &DevIdFiles) -> AgentOptions {
    let attestors = format!(
        "    NodeAttestor \"tpm_devid\" {{\n        plugin_data {{\n            tpm_device_path = \"{}\"\n            devid_cert_path = \"{}\"\n            devid_priv_path = \"{}\"\n            devid_pub_path = \"{}\"\n        }}\n    }}\n    WorkloadAttestor \"unix\" {{\n        plugin_data {{}}\n    }}",
        device.display(),
        cert.display(),
        devid.private_blob.display(),
        devid.public_blob.display()
    );
    AgentOptions { attestors: Some(attestors), ..AgentOptions::default() }
}

/// The whole flow on one pairing with a DevID of `kind`.
async fn attests<S: ServerUnderTest, A: AgentUnderTest>(tag: &str, kind: DevIdKind) {
    let (Some(server_bin), Some(agent_bin)) = (S::binary(), A::binary()) else { return };
    let node = format!("node-{tag}");
    let Some(n) = provision(&node, kind) else { return };
    let server = S::start(&server_bin, &server_setup(&n.dir)).await;
    let options = agent_options(&n.tpm.socket, &n.cert, &n.devid);
    let agent = A::start(&agent_bin, &n.dir.join("agent"), server.port, &options).await;

    let agent_id = format!("spiffe://example.org/spire/agent/tpm_devid/{}", sha1_fingerprint(&n.cert));
    let shown = server.cli(&["agent", "show", "-spiffeID", &agent_id]);
    let ca_fingerprint = sha1_fingerprint(&n.dir.join("devid-ca.pem"));
    for selector in [
        format!("tpm_devid:subject:cn:{node}"),
        "tpm_devid:issuer:cn:devid-ca".to_owned(),
        format!("tpm_devid:ca:fingerprint:{ca_fingerprint}"),
    ] {
        assert!(shown.contains(&selector), "{} lacks {selector}:\n{shown}", S::NAME);
    }
    assert!(shown.contains("Can re-attest     : true"), "{shown}");

    agent_server::node_alias_workload_gets_svid(
        &server,
        &agent,
        "tpm-nodes",
        tag,
        &format!("tpm_devid:subject:cn:{node}"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn our_agent_attests_to_our_server_with_an_ecc_devid() {
    attests::<OurServer, OurAgent>("ours-ecc", DevIdKind::Ecc).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn our_agent_attests_to_our_server_with_an_rsa_devid() {
    attests::<OurServer, OurAgent>("ours-rsa", DevIdKind::Rsa).await;
}

/// SPIRE's agent (go-tpm over the swtpm socket) against our server, ECC and RSA DevIDs: the wire
/// format both ways and our MakeCredential opened by a real TPM for SPIRE's AK.
#[tokio::test(flavor = "multi_thread")]
async fn spire_agent_attests_to_our_server() {
    attests::<OurServer, UpstreamAgent>("spire-agent-ecc", DevIdKind::Ecc).await;
    attests::<OurServer, UpstreamAgent>("spire-agent-rsa", DevIdKind::Rsa).await;
}

/// Our agent against SPIRE's server, ECC and RSA DevIDs: go-tpm's MakeCredential opened by our TPM
/// commands, our DevID signatures checked by Go.
#[tokio::test(flavor = "multi_thread")]
async fn our_agent_attests_to_spire_server() {
    attests::<UpstreamServer, OurAgent>("spire-server-ecc", DevIdKind::Ecc).await;
    attests::<UpstreamServer, OurAgent>("spire-server-rsa", DevIdKind::Rsa).await;
}

/// Our server refuses a DevID certificate of another CA and an expired one, and our agent refuses
/// to use a DevID key made in another TPM (the TPM it talks to cannot load it): no agent is
/// created. (The server's refusals of an AK that is not in the EK's TPM, of a key the AK did not
/// certify and of an EK of another manufacturer are in its unit tests, which can forge payloads.)
#[tokio::test(flavor = "multi_thread")]
async fn refusals_create_no_agent() {
    let (Some(server_bin), Some(agent_bin)) =
        (<OurServer as ServerUnderTest>::binary(), <OurAgent as AgentUnderTest>::binary())
    else {
        return;
    };
    let Some(n) = provision("refused", DevIdKind::Ecc) else { return };
    let Some(other_tpm) = Swtpm::start() else { return };
    openssl_ca(&n.dir, "other-ca");
    openssl_issue(&n.dir, "other-ca", &n.devid.public_pem, "stranger", "1", &n.dir.join("stranger.pem"));
    openssl_issue(&n.dir, "devid-ca", &n.devid.public_pem, "expired", "0", &n.dir.join("expired.pem"));
    let other_dir = n.dir.join("other-tpm");
    std::fs::create_dir(&other_dir).expect("mkdir");
    let foreign = other_tpm.create_devid(&other_dir, "foreign", DevIdKind::Ecc, "");
    openssl_issue(&n.dir, "devid-ca", &foreign.public_pem, "foreign", "1", &n.dir.join("foreign.pem"));
    tokio::time::sleep(Duration::from_millis(1100)).await; // the expired certificate is now expired
    let server = OurServer::start(&server_bin, &server_setup(&n.dir)).await;
    let cases = [
        ("another CA", "stranger.pem", &n.devid, "x509: certificate signed by unknown authority"),
        ("expired", "expired.pem", &n.devid, "certificate has expired or is not yet valid"),
        ("foreign key", "foreign.pem", &foreign, "unable to start a new TPM session: cannot load DevID key on TPM"),
    ];
    for (case, cert, devid, message) in cases {
        // The server allows one attestation per second from an address (SPIRE's rate limit).
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let options = agent_options(&n.tpm.socket, &n.dir.join(cert), devid);
        let mut agent = OurAgent::launch(&agent_bin, &n.dir.join(case.replace(' ', "-")), server.port, &options);
        let status = agent.wait_exit(Duration::from_secs(60)).await;
        assert!(status.is_some_and(|s| !s.success()), "{case}: the agent did not fail:\n{}", agent.log());
        let said = format!("{}\n{}", agent.log(), server.log());
        assert!(said.contains(message), "{case}: no {message:?} in:\n{said}");
    }
    let log = server.log();
    for refusal in [
        "code=InvalidArgument nodeattestor(tpm_devid): unable to verify DevID signature: verification failed: x509: certificate signed by unknown authority",
        "code=InvalidArgument nodeattestor(tpm_devid): unable to verify DevID signature: verification failed: x509: certificate has expired or is not yet valid",
    ] {
        assert!(log.contains(refusal), "no {refusal:?} in:\n{log}");
    }
    let listed = server.cli(&["agent", "list"]);
    assert!(!listed.contains("tpm_devid"), "no agent may have attested:\n{listed}");
}

/// An agent renews its short-lived SVID by attesting again: a new TPM session, a new AK, fresh
/// challenges; the agent keeps its ID and selectors.
async fn reattests<A: AgentUnderTest>(tag: &str) {
    let (Some(server_bin), Some(agent_bin)) = (<OurServer as ServerUnderTest>::binary(), A::binary()) else { return };
    let node = format!("node-{tag}");
    let Some(n) = provision(&node, DevIdKind::Ecc) else { return };
    let mut setup = server_setup(&n.dir);
    setup.extra_config = "agent_ttl = \"20s\"".into();
    let server = OurServer::start(&server_bin, &setup).await;
    let options = agent_options(&n.tpm.socket, &n.cert, &n.devid);
    let agent = A::start(&agent_bin, &n.dir.join("agent"), server.port, &options).await;
    let agent_id = format!("spiffe://example.org/spire/agent/tpm_devid/{}", sha1_fingerprint(&n.cert));
    let attestations =
        || server.log().lines().filter(|l| l.contains("agent attested") && l.contains(&agent_id)).count();
    assert_eq!(attestations(), 1, "{}", server.log());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while attestations() < 2 {
        assert!(std::time::Instant::now() < deadline, "{} never re-attested:\n{}", A::NAME, agent.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let shown = server.cli(&["agent", "show", "-spiffeID", &agent_id]);
    assert!(shown.contains(&format!("tpm_devid:subject:cn:{node}")), "{shown}");
    assert!(shown.contains("Can re-attest     : true"), "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn our_agent_reattests_to_our_server() {
    reattests::<OurAgent>("reattest").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spire_agent_reattests_to_our_server() {
    reattests::<UpstreamAgent>("reattest-spire-agent").await;
}

/// A forger with two genuine TPMs: the DevID key and the AK of one (A), the endorsement key and
/// certificate of the other (B), both from the trusted manufacturer. The DevID signature is
/// right; the credential is encrypted to B's EK and A cannot open it, so the answer is wrong.
#[derive(Debug)]
struct SwappedEk {
    session: std::sync::Mutex<Session>,
    payload: Vec<u8>,
}

impl NodeAttestor for SwappedEk {
    fn name(&self) -> &str {
        "tpm_devid"
    }

    // What `#[async_trait]` writes (this crate does not depend on it).
    fn payload<'life0, 'async_trait>(
        &'life0 self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, NodeAttestorError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move { Ok(self.payload.clone()) })
    }

    fn challenge<'life0, 'life1, 'async_trait>(
        &'life0 self,
        challenge: &'life1 [u8],
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, NodeAttestorError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let request = ChallengeRequest::from_json(challenge).expect("challenge");
            let cred = request.cred_activation.expect("credential");
            let mut session = self.session.lock().expect("session");
            let devid = session.sign_nonce(&request.devid).expect("sign");
            let opened = session.activate_credential(&cred.credential, &cred.secret);
            assert!(opened.is_err(), "TPM A opened a credential made for TPM B's EK");
            Ok(ChallengeResponse { devid, cred_activation: vec![0; 32] }.to_json())
        })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn our_server_refuses_an_ak_that_is_not_in_the_eks_tpm() {
    let Some(server_bin) = <OurServer as ServerUnderTest>::binary() else { return };
    let Some(a) = provision("forger", DevIdKind::Ecc) else { return };
    let Some(b) = Swtpm::start() else { return };
    let b_dir = a.dir.join("tpm-b");
    std::fs::create_dir(&b_dir).expect("mkdir");
    for file in ["manufacturer.pem", "manufacturer.key"] {
        std::fs::copy(a.dir.join(file), b_dir.join(file)).expect("copy the manufacturer CA");
    }
    b.provision_ek(&b_dir, "manufacturer");
    let b_devid = b.create_devid(&b_dir, "devid", DevIdKind::Ecc, "");
    let (pub_blob, priv_blob) =
        (std::fs::read(&a.devid.public_blob).unwrap(), std::fs::read(&a.devid.private_blob).unwrap());
    let mut session_a = Session::open(&a.tpm.socket, &pub_blob, &priv_blob, &Passwords::default()).expect("TPM A");
    let mut session_b = Session::open(
        &b.socket,
        &std::fs::read(&b_devid.public_blob).unwrap(),
        &std::fs::read(&b_devid.private_blob).unwrap(),
        &Passwords::default(),
    )
    .expect("TPM B");
    let (certified_devid, certification_signature) = session_a.certify_devid().expect("certify");
    let cert_pem = std::fs::read_to_string(&a.cert).unwrap();
    let payload = AttestationRequest {
        devid_cert: spire_identity::x509::certs_from_pem(&cert_pem).unwrap(),
        devid_pub: pub_blob,
        ek_cert: session_b.ek_cert().expect("B's EK certificate"),
        ek_pub: session_b.ek_public().to_vec(),
        ak_pub: session_a.ak_public().to_vec(),
        certified_devid,
        certification_signature,
    };
    drop(session_b);
    let forger = SwappedEk { session: std::sync::Mutex::new(session_a), payload: payload.to_json() };

    let server = OurServer::start(&server_bin, &server_setup(&a.dir)).await;
    let td = spire_identity::TrustDomain::parse("example.org").unwrap();
    let client =
        ServerClient::new(format!("127.0.0.1:{}", server.port), &td, Arc::new(RwLock::new(BundleSet::new())), true);
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let err = attest(&client, &forger, &key.into()).await.expect_err("the forger attested").to_string();
    assert!(err.contains("nodeattestor(tpm_devid): credential activation failed: nonces are different"), "{err}");
    let listed = server.cli(&["agent", "list"]);
    assert!(!listed.contains("tpm_devid"), "no agent may have attested:\n{listed}");
}
