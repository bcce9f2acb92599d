//! The aws_iid node attestor end to end: moto plays EC2, IAM and STS (the `moto` peer), a stand-in
//! IMDSv2 serves an instance identity document signed by a test certificate (PKCS#7 `rsa2048` and
//! PKCS#1 `signature`), and our server trusts that certificate through its test-only setting. Our
//! agent, then SPIRE v1.13.3's, attests to our server: the agent ID and resolver selectors as `agent
//! list` shows them, and a workload under a node alias on `aws_iid:tag:app:webserver` gets its SVID.
//! Then the refusals, each with SPIRE's message and no agent stored: a document signed by another
//! key, a document for another account (the server assumes the account's role, where EC2 does not
//! know the instance), an instance EC2 does not know, and the same document replayed.
//!
//! SPIRE's server cannot be told to trust a test certificate, so SPIRE's server with our agent is
//! not tested here (our agent's payload is SPIRE's format, checked in the attestation crate).

mod agent_server;

use std::path::Path;
use std::time::Duration;

use agent_server::{AgentUnderTest, OurAgent, OurServer, ServerSetup, ServerUnderTest};
use spire_testkit::agent::AgentOptions;
use spire_testkit::aws_iid::{
    Identity, IidSigner, Imds, MOTO_ACCESS_KEY_ID, MOTO_ACCOUNT_ID, MOTO_SECRET_ACCESS_KEY, Moto, document,
};
use spire_testkit::upstream::UpstreamAgent;

const REGION: &str = "us-west-2";

fn server_setup(moto: &Moto, ca: &Path) -> ServerSetup {
    let plugin = format!(
        r#"    NodeAttestor "aws_iid" {{
        plugin_data {{
            access_key_id = "{MOTO_ACCESS_KEY_ID}"
            secret_access_key = "{MOTO_SECRET_ACCESS_KEY}"
            assume_role = "spire-server-delegate"
            test_only_aws_endpoint_url = "{}"
            test_only_ca_certificates_path = "{}"
        }}
    }}
"#,
        moto.endpoint(),
        ca.display()
    );
    ServerSetup { extra_plugins: plugin, ..ServerSetup::default() }
}

fn agent_options(imds: &Imds) -> AgentOptions {
    let attestors = format!(
        "    NodeAttestor \"aws_iid\" {{\n        plugin_data {{\n            ec2_metadata_endpoint = \"{}\"\n        }}\n    }}\n    WorkloadAttestor \"unix\" {{\n        plugin_data {{}}\n    }}",
        imds.endpoint()
    );
    AgentOptions { attestors: Some(attestors), ..AgentOptions::default() }
}

struct Setup {
    moto: Moto,
    signer: IidSigner,
    server: OurServer,
    _dir: tempfile::TempDir,
}

async fn setup() -> Option<Setup> {
    let moto = Moto::start()?;
    let signer = IidSigner::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("aws-test-ca.pem");
    std::fs::write(&ca, signer.certificate_pem()).expect("write the test CA");
    let server_bin = <OurServer as ServerUnderTest>::binary().expect("our server");
    let server = OurServer::start(&server_bin, &server_setup(&moto, &ca)).await;
    Some(Setup { moto, signer, server, _dir: dir })
}

/// `agent` attests as the instance moto launched; the server shows SPIRE's agent ID and selectors,
/// and a workload under a node alias on the instance's tag gets its SVID.
async fn attests<A: AgentUnderTest>(tag: &str) -> Option<(Setup, Imds, A, String)> {
    let agent_bin = A::binary()?;
    let s = setup().await?;
    let launched = s.moto.launch_instance(
        REGION,
        &[("app", "webserver"), ("team", tag)],
        &format!("sg-{tag}"),
        &format!("profile-{tag}"),
    );
    let doc = document(MOTO_ACCOUNT_ID, REGION, &launched.instance_id, &launched.image_id);
    let imds = Imds::start(Identity::signed(&s.signer, &doc)).await;
    let dir = s._dir.path().join(format!("agent-{tag}"));
    let agent = A::start(&agent_bin, &dir, s.server.port, &agent_options(&imds)).await;

    let agent_id =
        format!("spiffe://example.org/spire/agent/aws_iid/{MOTO_ACCOUNT_ID}/{REGION}/{}", launched.instance_id);
    let listed = s.server.cli(&["agent", "list"]);
    assert!(listed.contains(&agent_id), "{listed}");
    let shown = s.server.cli(&["agent", "show", "-spiffeID", &agent_id]);
    for selector in [
        "aws_iid:tag:app:webserver".to_owned(),
        format!("aws_iid:tag:team:{tag}"),
        format!("aws_iid:sg:id:{}", launched.security_group_id),
        format!("aws_iid:sg:name:{}", launched.security_group_name),
        format!("aws_iid:iamrole:{}", launched.role_arn),
        format!("aws_iid:instance:id:{}", launched.instance_id),
        format!("aws_iid:image:id:{}", launched.image_id),
        format!("aws_iid:region:{REGION}"),
        format!("aws_iid:az:{REGION}a"),
    ] {
        assert!(shown.contains(&selector), "{shown}\nlacks {selector}");
    }
    assert!(shown.contains("Can re-attest     : false"), "{shown}");
    agent_server::node_alias_workload_gets_svid(&s.server, &agent, "aws-nodes", tag, "aws_iid:tag:app:webserver").await;
    Some((s, imds, agent, doc))
}

/// An agent of ours serving `identity` must fail to attest, the server log saying `message`.
async fn refused(s: &Setup, imds: &Imds, case: &str, identity: Identity, message: &str) {
    // One attestation per second from an address (SPIRE's rate limit).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    imds.set_identity(identity);
    let agent_bin = <OurAgent as AgentUnderTest>::binary().expect("our agent");
    let dir = s._dir.path().join(case.replace(' ', "-"));
    let mut agent = OurAgent::launch(&agent_bin, &dir, s.server.port, &agent_options(imds));
    let status = agent.wait_exit(Duration::from_secs(60)).await;
    assert!(status.is_some_and(|st| !st.success()), "{case}: the agent did not fail:\n{}", agent.log());
    let log = s.server.log();
    assert!(log.contains(message), "{case}: the server log lacks {message:?}:\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn our_agent_attests_to_our_server_and_refusals() {
    let Some((s, imds, mut agent, doc)) = attests::<OurAgent>("ours").await else { return };
    agent.stop();
    let before = s.server.cli(&["agent", "list"]);

    let replay = Identity::signed(&s.signer, &doc);
    refused(
        &s,
        &imds,
        "replayed",
        replay,
        "nodeattestor(aws_iid): attestation data has already been used to attest an agent",
    )
    .await;

    let forger = IidSigner::impostor_of(&s.signer);
    let other = s.moto.launch_instance(REGION, &[("app", "webserver")], "sg-other", "profile-other");
    let other_doc = document(MOTO_ACCOUNT_ID, REGION, &other.instance_id, &other.image_id);
    refused(
        &s,
        &imds,
        "another key",
        Identity::signed(&forger, &other_doc),
        "nodeattestor(aws_iid): failed verification of instance identity cryptographic signature: crypto/rsa: verification error",
    )
    .await;

    let foreign = document("210987654321", REGION, &other.instance_id, &other.image_id);
    refused(
        &s,
        &imds,
        "another account",
        Identity::signed(&s.signer, &foreign),
        "nodeattestor(aws_iid): failed to describe instance: operation error EC2: DescribeInstances, api error InvalidInstanceID.NotFound",
    )
    .await;

    let unknown = document(MOTO_ACCOUNT_ID, REGION, "i-0123456789abcdef0", &other.image_id);
    refused(
        &s,
        &imds,
        "unknown instance",
        Identity::signed(&s.signer, &unknown),
        "nodeattestor(aws_iid): failed to describe instance: operation error EC2: DescribeInstances, api error InvalidInstanceID.NotFound",
    )
    .await;

    let after = s.server.cli(&["agent", "list"]);
    assert_eq!(before, after, "a refused attestation stored an agent");
    assert!(!after.contains(&other.instance_id), "{after}");
}

/// SPIRE's agent reads the stand-in IMDS (its `ec2_metadata_endpoint`) and our server attests it.
#[tokio::test(flavor = "multi_thread")]
async fn spire_agent_attests_to_our_server() {
    let _ = attests::<UpstreamAgent>("spire-agent").await;
}
