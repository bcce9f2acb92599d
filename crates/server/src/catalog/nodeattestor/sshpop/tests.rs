//! The attestation flow with CAs and host certificates made by `ssh-keygen`, answered by the
//! agent's signer.

use std::path::Path;

use spire_attestation::sshpop::{AttestationData, HostCertificate, HostKey, respond};
use spire_testkit::openssl::ssh_keygen;
use tonic::Code;

use super::template::{self, Template};
use super::*;

/// A key `name` of `kind` (`ed25519`, `ecdsa-256`, `rsa`...) in `dir`.
fn key(dir: &Path, name: &str, kind: &str) {
    let (t, bits) = kind.split_once('-').unwrap_or((kind, ""));
    let mut args = vec!["-q", "-N", "", "-t", t, "-f", name, "-C", name];
    if !bits.is_empty() {
        args.extend(["-b", bits]);
    }
    ssh_keygen(dir, &args);
}

/// Signs `name.pub` with CA `ca` (`-h` for a host certificate), principal `principal`, validity
/// `validity`; returns the certificate's wire bytes.
fn certify(dir: &Path, ca: &str, name: &str, host: bool, principal: &str, validity: &str) -> Vec<u8> {
    let pub_file = format!("{name}.pub");
    let mut args = vec!["-q", "-s", ca, "-I", name, "-n", principal, "-V", validity];
    if host {
        args.push("-h");
    }
    args.push(&pub_file);
    ssh_keygen(dir, &args);
    let text = std::fs::read(dir.join(format!("{name}-cert.pub"))).unwrap();
    HostCertificate::from_text(&text).unwrap().as_bytes().to_vec()
}

fn td() -> TrustDomain {
    TrustDomain::parse("example.org").unwrap()
}

fn attestor(dir: &Path, cas: &[&str], domain: Option<&str>, template: &str) -> SshPopAttestor {
    let lines: Vec<String> =
        cas.iter().map(|ca| std::fs::read_to_string(dir.join(format!("{ca}.pub"))).unwrap()).collect();
    let authorities = Authorities::parse(lines.iter().map(|l| l.trim())).unwrap();
    SshPopAttestor::new(td(), authorities, domain.map(str::to_owned), Template::parse(template).unwrap())
}

/// Answers with the host key in `dir/name`.
struct Agent {
    key: HostKey,
}

impl Agent {
    fn new(dir: &Path, name: &str) -> Self {
        Self {
            key: HostKey::from_pem(&std::fs::read(dir.join(name)).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}")),
        }
    }
}

#[async_trait::async_trait]
impl Challenger for Agent {
    async fn challenge(&mut self, challenge: Vec<u8>) -> Result<Vec<u8>, Status> {
        respond(&self.key, &challenge).map_err(|e| Status::internal(e.to_string()))
    }
}

fn payload(cert: &[u8]) -> Vec<u8> {
    AttestationData { certificate: cert.to_vec() }.to_json()
}

#[tokio::test]
async fn every_key_type_attests() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    key(dir, "ca", "ed25519");
    key(dir, "rsa-ca", "rsa-3072");
    key(dir, "ecdsa-ca", "ecdsa-384");
    for (i, kind) in ["ed25519", "ecdsa-256", "ecdsa-384", "ecdsa-521", "rsa-2048", "ed25519"].into_iter().enumerate() {
        let name = format!("host-{i}-{kind}");
        key(dir, &name, kind);
        // CAs of each type (an RSA CA signs rsa-sha2-512).
        let ca = ["ca", "rsa-ca", "ecdsa-ca"][i % 3];
        let cert = certify(dir, ca, &name, true, "node-1.example.org", "-5m:+1h");
        let result = attestor(dir, &["ca", "rsa-ca", "ecdsa-ca"], None, template::DEFAULT)
            .attest_payload(&payload(&cert), &mut Agent::new(dir, &name))
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e:?}"));
        let fingerprint = HostCertificate::from_bytes(&cert).unwrap().fingerprint();
        assert_eq!(result.agent_id.to_string(), format!("spiffe://example.org/spire/agent/sshpop/{fingerprint}"));
        assert_eq!(fingerprint.len(), 43, "unpadded base64 of 32 bytes");
        assert!(result.selector_values.is_empty());
        assert!(result.can_reattest);
    }
}

#[tokio::test]
async fn the_template_and_the_canonical_domain_name_the_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    key(dir, "ca", "ed25519");
    key(dir, "host", "ed25519");
    let cert = certify(dir, "ca", "host", true, "node-1.example.org,alias.example.org", "always:forever");
    let run = |domain: Option<&'static str>, t: &'static str| {
        let a = attestor(dir, &["ca"], domain, t);
        let p = payload(&cert);
        let mut agent = Agent::new(dir, "host");
        async move { a.attest_payload(&p, &mut agent).await }
    };
    let r = run(Some("example.org"), "/{{ .PluginName }}/{{ .Hostname }}").await.unwrap();
    assert_eq!(r.agent_id.to_string(), "spiffe://example.org/spire/agent/sshpop/node-1");
    let r = run(None, "/static/{{ index .ValidPrincipals 1 }}").await.unwrap();
    assert_eq!(r.agent_id.to_string(), "spiffe://example.org/spire/agent/static/alias.example.org");
    let err = run(Some("other.org"), template::DEFAULT).await.unwrap_err();
    assert_eq!(
        err.message(),
        "nodeattestor(sshpop): failed to decanonicalize hostname: cert principal is not in domain \".other.org\""
    );
    let err = run(None, "/{{ index .ValidPrincipals 5 }}").await.unwrap_err();
    assert_eq!(
        err.message(),
        "nodeattestor(sshpop): failed to create AgentID: error calling index: index out of range: 5"
    );
    let err = run(None, "{{ .Hostname }}").await.unwrap_err();
    assert!(err.message().contains("invalid agent path suffix \"node-1.example.org\""), "{}", err.message());
}

#[tokio::test]
async fn refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for name in ["ca", "other-ca", "good", "stranger", "old", "young", "user", "spare"] {
        key(dir, name, "ed25519");
    }
    let good = certify(dir, "ca", "good", true, "good.example.org", "-5m:+1h");
    let stranger = certify(dir, "other-ca", "stranger", true, "stranger.example.org", "-5m:+1h");
    let old = certify(dir, "ca", "old", true, "old.example.org", "20200101:20200102");
    let young = certify(dir, "ca", "young", true, "young.example.org", "+1d:+2d");
    let user = certify(dir, "ca", "user", false, "user", "-5m:+1h");
    let a = attestor(dir, &["ca"], None, template::DEFAULT);
    let cases: Vec<(Vec<u8>, &str, Code, &str)> = vec![
        (Vec::new(), "good", Code::InvalidArgument, "missing attestation payload"),
        (
            payload(&stranger),
            "stranger",
            Code::Internal,
            "failed to check host key: ssh: no authorities for hostname: stranger.example.org:22",
        ),
        (payload(&old), "old", Code::Internal, "failed to check host key: ssh: cert has expired"),
        (payload(&young), "young", Code::Internal, "failed to check host key: ssh: cert is not yet valid"),
        (
            payload(&user),
            "user",
            Code::Internal,
            "failed to check host key: ssh: certificate presented as a host key has type 1",
        ),
        (payload(&good), "spare", Code::Internal, "failed to verify signature: ssh: signature did not verify"),
    ];
    for (p, agent_key, code, message) in cases {
        let err = a.attest_payload(&p, &mut Agent::new(dir, agent_key)).await.unwrap_err();
        assert_eq!(err.code(), code, "{message}: {err:?}");
        assert_eq!(err.message(), format!("nodeattestor(sshpop): {message}"));
    }
}

/// Answers with a fixed body.
struct Fixed(Vec<u8>);

#[async_trait::async_trait]
impl Challenger for Fixed {
    async fn challenge(&mut self, _: Vec<u8>) -> Result<Vec<u8>, Status> {
        Ok(self.0.clone())
    }
}

#[tokio::test]
async fn malformed_responses_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    key(dir, "ca", "ed25519");
    key(dir, "host", "ed25519");
    let cert = certify(dir, "ca", "host", true, "host.example.org", "-5m:+1h");
    let a = attestor(dir, &["ca"], None, template::DEFAULT);
    let nonce = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
    for (body, message) in [
        ("{".to_owned(), "failed to unmarshal challenge response: "),
        (r#"{"Nonce":"AQ=="}"#.to_owned(), "failed to combine nonces: invalid response nonce size"),
        (format!(r#"{{"Nonce":"{nonce}","Signature":null}}"#), "failed to verify signature: ssh: signature missing"),
        (
            format!(r#"{{"Nonce":"{nonce}","Signature":{{"Format":"ssh-rsa","Blob":"AQ=="}}}}"#),
            "failed to verify signature: ssh: signature type ssh-rsa for key type ssh-ed25519",
        ),
    ] {
        let err = a.attest_payload(&payload(&cert), &mut Fixed(body.into_bytes())).await.unwrap_err();
        assert_eq!(err.code(), Code::Internal);
        assert!(err.message().starts_with(&format!("nodeattestor(sshpop): {message}")), "{}", err.message());
    }
}

#[test]
fn the_ca_file_is_read_at_setup() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    key(dir, "ca", "ecdsa-256");
    let setup = |data: String| {
        SshPopAttestor::from_plugin(&crate::catalog::nodeattestor::test_plugin("sshpop", &data), td())
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let ca_file = dir.join("ca.pub");
    setup(format!("cert_authorities_path = \"{}\"", ca_file.display())).unwrap();
    let err = setup("cert_authorities_path = \"/no/such/cas.pub\"".into()).unwrap_err();
    assert_eq!(
        err,
        "plugins.NodeAttestor.sshpop.plugin_data: failed to get cert authorities from file: open /no/such/cas.pub: no such file or directory"
    );
    std::fs::write(dir.join("empty.pub"), "\n\n").unwrap();
    let err = setup(format!("cert_authorities_path = \"{}\"", dir.join("empty.pub").display())).unwrap_err();
    let expected =
        format!("failed to get cert authorities from file: no data found in file: {:?}", dir.join("empty.pub"));
    assert!(err.ends_with(&expected), "{err}");
    std::fs::write(dir.join("commented.pub"), "# trusted CAs\n").unwrap();
    let err = setup(format!("cert_authorities_path = \"{}\"", dir.join("commented.pub").display())).unwrap_err();
    assert!(err.contains("failed to create cert checker: failed to parse public key \"# trusted CAs\""), "{err}");
}

/// DSA (which aws-lc-rs lacks) reads as SPIRE reads it, and is refused where its signatures
/// would have to be checked: a DSA CA's certificates, a DSA host key's answer.
#[tokio::test]
async fn dsa_keys_are_refused_where_they_would_sign() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    key(dir, "dsa-ca", "dsa");
    key(dir, "ca", "ed25519");
    key(dir, "host", "ed25519");
    key(dir, "dsa-host", "dsa");
    let by_dsa = certify(dir, "dsa-ca", "host", true, "host.example.org", "-5m:+1h");
    let err = attestor(dir, &["dsa-ca"], None, template::DEFAULT)
        .attest_payload(&payload(&by_dsa), &mut Agent::new(dir, "host"))
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        "nodeattestor(sshpop): failed to check host key: ssh: certificate signature does not verify"
    );
    let dsa_host = certify(dir, "ca", "dsa-host", true, "dsa.example.org", "-5m:+1h");
    let err = HostKey::from_pem(&std::fs::read(dir.join("dsa-host")).unwrap()).unwrap_err();
    assert_eq!(err.to_string(), "ssh: unsupported key type ssh-dss");
    // SPIRE's agent could sign with it; our server cannot check the signature.
    let err = attestor(dir, &["ca"], None, template::DEFAULT)
        .attest_payload(&payload(&dsa_host), &mut Agent::new(dir, "host"))
        .await
        .unwrap_err();
    assert_eq!(err.message(), "nodeattestor(sshpop): failed to verify signature: ssh: unsupported key type ssh-dss");
}
