//! The attestation flow with certificates made here (rcgen), answered by the agent's signer.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType, SignatureAlgorithm,
};
use spire_attestation::x509pop::{AttestationData, Challenge, SigningKey, fingerprint};
use tonic::Code;

use super::template::{self, Template};
use super::*;

struct Ca {
    der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(cn: &str) -> Ca {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = p.self_signed(&key).unwrap();
    Ca { der: cert.der().to_vec(), issuer: Issuer::new(p, key) }
}

fn intermediate(parent: &Ca, cn: &str) -> Ca {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let cert = p.signed_by(&key, &parent.issuer).unwrap();
    Ca { der: cert.der().to_vec(), issuer: Issuer::new(p, key) }
}

/// A leaf under `issuer` with a key of `alg`; returns its DER and the agent's signer.
fn leaf(issuer: &Ca, alg: &'static SignatureAlgorithm, digital_signature: bool) -> (Vec<u8>, SigningKey) {
    let key = KeyPair::generate_for(alg).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "node-1");
    p.serial_number = Some(vec![0x0a, 0xbc].into());
    p.key_usages = if digital_signature { vec![KeyUsagePurpose::DigitalSignature] } else { vec![] };
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.subject_alt_names = vec![
        SanType::URI("x509pop://example.org/datacenter/eu-1".try_into().unwrap()),
        SanType::URI("x509pop://other.org/ignored/x".try_into().unwrap()),
    ];
    let cert = p.signed_by(&key, &issuer.issuer).unwrap();
    (cert.der().to_vec(), SigningKey::from_pkcs8(&key.serialize_der()).unwrap())
}

fn td() -> TrustDomain {
    TrustDomain::parse("example.org").unwrap()
}

fn attestor(roots: &[&Ca], template: &str) -> X509PopAttestor {
    X509PopAttestor::new(td(), roots.iter().map(|c| c.der.clone()).collect(), Template::parse(template).unwrap())
}

/// Answers with `key` and counts challenges.
struct Agent<'a> {
    key: &'a SigningKey,
    challenges: usize,
}

#[async_trait::async_trait]
impl Challenger for Agent<'_> {
    async fn challenge(&mut self, challenge: Vec<u8>) -> Result<Vec<u8>, Status> {
        self.challenges += 1;
        let c = Challenge::from_json(&challenge).unwrap();
        Ok(self.key.respond(&c).map_err(|e| Status::internal(e.to_string()))?.to_json())
    }
}

fn payload(chain: &[&[u8]]) -> Vec<u8> {
    AttestationData { certificates: chain.iter().map(|c| c.to_vec()).collect() }.to_json()
}

#[tokio::test]
async fn every_key_type_attests_through_an_intermediate() {
    let root = ca("root");
    let inter = intermediate(&root, "inter");
    for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_ECDSA_P384_SHA384, &rcgen::PKCS_RSA_SHA256] {
        let (leaf_der, key) = leaf(&inter, alg, true);
        let mut agent = Agent { key: &key, challenges: 0 };
        let result = attestor(&[&root], template::DEFAULT)
            .attest_payload(&payload(&[&leaf_der, &inter.der]), &mut agent)
            .await
            .unwrap_or_else(|e| panic!("{alg:?}: {e:?}"));
        assert_eq!(agent.challenges, 1);
        assert_eq!(
            result.agent_id.to_string(),
            format!("spiffe://example.org/spire/agent/x509pop/{}", fingerprint(&leaf_der))
        );
        assert!(result.can_reattest);
        assert_eq!(
            result.selector_values,
            [
                "subject:cn:node-1".to_owned(),
                format!("ca:fingerprint:{}", fingerprint(&inter.der)),
                format!("ca:fingerprint:{}", fingerprint(&root.der)),
                "serialnumber:0abc".to_owned(),
                "san:datacenter:eu-1".to_owned(),
            ]
        );
    }
}

#[tokio::test]
async fn the_template_names_the_agent() {
    let root = ca("root");
    let (leaf_der, key) = leaf(&root, &rcgen::PKCS_ECDSA_P256_SHA256, true);
    let result = attestor(&[&root], "/cn/{{ .Subject.CommonName }}/{{ index .URISanSelectors \"datacenter\" }}")
        .attest_payload(&payload(&[&leaf_der]), &mut Agent { key: &key, challenges: 0 })
        .await
        .unwrap();
    assert_eq!(result.agent_id.to_string(), "spiffe://example.org/spire/agent/cn/node-1/eu-1");
    let err = attestor(&[&root], "/{{ .Subject.SerialNumber }}")
        .attest_payload(&payload(&[&leaf_der]), &mut Agent { key: &key, challenges: 0 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    assert!(
        err.message().starts_with("nodeattestor(x509pop): failed to make spiffe id: invalid agent path suffix \"/\""),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn refusals() {
    let root = ca("root");
    let other = ca("other");
    let (leaf_der, key) = leaf(&root, &rcgen::PKCS_ECDSA_P256_SHA256, true);
    let (_, wrong_key) = leaf(&root, &rcgen::PKCS_ECDSA_P256_SHA256, true);
    let (no_sign_der, no_sign_key) = leaf(&root, &rcgen::PKCS_ECDSA_P256_SHA256, false);
    let a = attestor(&[&root], template::DEFAULT);
    let run = |payload: Vec<u8>, key: &'static SigningKey| {
        let a = &a;
        async move { a.attest_payload(&payload, &mut Agent { key, challenges: 0 }).await.unwrap_err() }
    };
    let key: &'static SigningKey = Box::leak(Box::new(key));
    let cases: Vec<(Vec<u8>, &'static SigningKey, Code, &str)> = vec![
        (Vec::new(), key, Code::InvalidArgument, "missing attestation payload"),
        (b"{".to_vec(), key, Code::InvalidArgument, "failed to unmarshal data: "),
        (br#"{"certificates":[]}"#.to_vec(), key, Code::InvalidArgument, "no certificate to attest"),
        (payload(&[b"junk"]), key, Code::InvalidArgument, "unable to parse leaf certificate: "),
        (payload(&[&leaf_der, b"junk"]), key, Code::InvalidArgument, "unable to parse intermediate certificate 0: "),
        (
            payload(&[&leaf(&other, &rcgen::PKCS_ECDSA_P256_SHA256, true).0]),
            key,
            Code::PermissionDenied,
            "certificate verification failed: x509: certificate signed by unknown authority",
        ),
        (
            payload(&[&leaf_der]),
            Box::leak(Box::new(wrong_key)),
            Code::PermissionDenied,
            "challenge response verification failed: ECDSA signature verify failed",
        ),
        (
            payload(&[&no_sign_der]),
            Box::leak(Box::new(no_sign_key)),
            Code::Internal,
            "unable to generate challenge: certificate not intended for digital signature use",
        ),
    ];
    for (p, k, code, message) in cases {
        let err = run(p, k).await;
        assert_eq!(err.code(), code, "{message}: {err:?}");
        let expected = format!("nodeattestor(x509pop): {message}");
        assert!(err.message().starts_with(&expected), "{}\n  expected {expected}", err.message());
    }
}

#[test]
fn responses_of_the_wrong_kind_or_length_are_refused() {
    let ec = verify::LeafKey::P256(vec![4; 65]);
    let challenge = Challenge { rsa_signature: None, ecdsa_signature: Some(Default::default()) };
    let err = verify::verify_response(&ec, &challenge, &Default::default()).unwrap_err();
    assert_eq!(err.to_string(), "expecting ECDSA response");
    let rsa = verify::LeafKey::Rsa(vec![1]);
    let challenge = Challenge { rsa_signature: Some(Default::default()), ecdsa_signature: None };
    let err = verify::verify_response(&rsa, &challenge, &Default::default()).unwrap_err();
    assert_eq!(err.to_string(), "expecting RSA response");
}

/// A server bundle holding fixed authorities.
#[derive(Debug)]
struct Bundle(Vec<Vec<u8>>);

#[async_trait::async_trait]
impl ServerBundle for Bundle {
    async fn x509_authorities(&self) -> Result<Vec<Vec<u8>>, String> {
        Ok(self.0.clone())
    }
}

/// An X509-SVID with `uri` under `issuer`, and its signer.
fn svid(issuer: &Ca, uri: &str) -> (Vec<u8>, SigningKey) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    let cert = p.signed_by(&key, &issuer.issuer).unwrap();
    (cert.der().to_vec(), SigningKey::from_pkcs8(&key.serialize_der()).unwrap())
}

fn spiffe_attestor(roots: &[&Ca], prefix: &str) -> X509PopAttestor {
    X509PopAttestor::spiffe(
        td(),
        Arc::new(Bundle(roots.iter().map(|c| c.der.clone()).collect())),
        prefix.into(),
        Template::parse(template::DEFAULT_SVID).unwrap(),
    )
}

#[tokio::test]
async fn spiffe_mode_exchanges_an_svid_under_the_prefix_for_an_agent_id() {
    let server_ca = ca("server");
    let (der, key) = svid(&server_ca, "spiffe://example.org/spire-exchange/rack-7/node-3");
    let result = spiffe_attestor(&[&server_ca], "/spire-exchange/")
        .attest_payload(&payload(&[&der]), &mut Agent { key: &key, challenges: 0 })
        .await
        .unwrap();
    assert_eq!(result.agent_id.to_string(), "spiffe://example.org/spire/agent/x509pop/rack-7/node-3");
    assert!(result.can_reattest);
    assert!(result.selector_values.contains(&format!("ca:fingerprint:{}", fingerprint(&server_ca.der))));

    // An empty prefix (normalised to "/") lets every path through.
    let result = spiffe_attestor(&[&server_ca], "/")
        .attest_payload(&payload(&[&der]), &mut Agent { key: &key, challenges: 0 })
        .await
        .unwrap();
    assert_eq!(result.agent_id.to_string(), "spiffe://example.org/spire/agent/x509pop/spire-exchange/rack-7/node-3");
}

#[tokio::test]
async fn spiffe_mode_refusals() {
    let server_ca = ca("server");
    let other = ca("other");
    let a = spiffe_attestor(&[&server_ca], "/spire-exchange/");
    let (outside, outside_key) = svid(&server_ca, "spiffe://example.org/workload/web");
    let (foreign, foreign_key) = svid(&other, "spiffe://example.org/spire-exchange/node");
    let (plain, plain_key) = leaf(&server_ca, &rcgen::PKCS_ECDSA_P256_SHA256, true);
    let (query, query_key) = svid(&server_ca, "spiffe://example.org?x/spire-exchange/node");
    let (other_td, other_td_key) = svid(&server_ca, "spiffe://other.org/spire-exchange/node");
    for (der, key, code, message) in [
        (query, query_key, Code::PermissionDenied, "x509 cert doesnt match SVID prefix"),
        (other_td, other_td_key, Code::PermissionDenied, "x509 cert SPIFFE ID is not in trust domain \"example.org\""),
        (outside, outside_key, Code::PermissionDenied, "x509 cert doesnt match SVID prefix"),
        (
            foreign,
            foreign_key,
            Code::PermissionDenied,
            "certificate verification failed: x509: certificate signed by unknown authority",
        ),
        (plain, plain_key, Code::PermissionDenied, "valid SVID x509 cert not found"),
    ] {
        let err = a.attest_payload(&payload(&[&der]), &mut Agent { key: &key, challenges: 0 }).await.unwrap_err();
        assert_eq!(err.code(), code, "{message}: {err:?}");
        assert_eq!(err.message(), format!("nodeattestor(x509pop): {message}"));
    }
}

#[tokio::test]
async fn chains_and_keys_beyond_the_limits_are_refused_before_any_challenge() {
    let root = ca("root");
    let mut chain = vec![intermediate(&root, "i0")];
    for i in 1..3 {
        let next = intermediate(&chain[i - 1], &format!("i{i}"));
        chain.push(next);
    }
    let (leaf_der, key) = leaf(&chain[2], &rcgen::PKCS_ECDSA_P256_SHA256, true);
    let mut ders: Vec<&[u8]> = vec![&leaf_der];
    ders.extend(chain.iter().rev().map(|c| c.der.as_slice()));
    let limited = |max_intermediates, max_rsa_key_size| {
        attestor(&[&root], template::DEFAULT).with_limits(Limits { max_intermediates, max_rsa_key_size })
    };
    let mut agent = Agent { key: &key, challenges: 0 };
    limited(3, 8192).attest_payload(&payload(&ders), &mut agent).await.expect("three intermediates allowed");
    let mut agent = Agent { key: &key, challenges: 0 };
    let err = limited(2, 8192).attest_payload(&payload(&ders), &mut agent).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "nodeattestor(x509pop): too many intermediate certificates")
    );
    assert_eq!(agent.challenges, 0);

    let (rsa_der, rsa_key) = leaf(&root, &rcgen::PKCS_RSA_SHA256, true);
    let mut agent = Agent { key: &rsa_key, challenges: 0 };
    let err = limited(4, 1024).attest_payload(&payload(&[&rsa_der]), &mut agent).await.unwrap_err();
    assert_eq!(err.message(), "nodeattestor(x509pop): leaf certificate key size too large");
    assert_eq!(agent.challenges, 0);
}

/// The SVID path is read as Go's `url.Parse` reads it, from the first `spiffe` URI.
#[test]
fn svid_paths_are_read_as_go_reads_urls() {
    let with = |uris: &[&str]| verify::LeafInfo {
        der: Vec::new(),
        key: verify::LeafKey::Unsupported(String::new()),
        digital_signature: true,
        subject_cn: String::new(),
        subject_serial_number: String::new(),
        issuer_cn: String::new(),
        serial_hex: String::new(),
        uris: uris.iter().map(|u| (*u).to_owned()).collect(),
    };
    let trimmed = |uris: &[&str]| verify::svid_path_trimmed(&with(uris), "example.org", "/spire-exchange/");
    assert_eq!(trimmed(&["spiffe://example.org/spire-exchange/a/b"]).unwrap(), "a/b");
    assert_eq!(trimmed(&["SPIFFE://example.org:443/spire-exchange/a"]).unwrap(), "a");
    assert_eq!(trimmed(&["https://x", "spiffe://example.org/spire-exchange/a?q#f"]).unwrap(), "a");
    for (uris, err) in [
        (&["spiffe://example.org?x/spire-exchange/a"][..], AttestError::SvidPrefix),
        (&["spiffe://example.org#/spire-exchange/a"], AttestError::SvidPrefix),
        (&["spiffe:opaque", "spiffe://example.org/spire-exchange/a"], AttestError::SvidPrefix),
        (&["spiffe://example.org:bad/spire-exchange/a"], AttestError::NoSvid),
        (&["https://example.org/spire-exchange/a"], AttestError::NoSvid),
        (&["spiffe://other.org/spire-exchange/a"], AttestError::SvidTrustDomain("example.org".into())),
        (&["spiffe:/spire-exchange/a"], AttestError::SvidTrustDomain("example.org".into())),
    ] {
        assert_eq!(trimmed(uris).unwrap_err(), err, "{uris:?}");
    }
}
