//! The signature checks against a stand-in AWS signer, and the refusals that come before any AWS
//! call. The EC2 and IAM lookups run against moto in `crates/interop/tests/aws_iid.rs`.

use std::sync::Arc;

use spire_attestation::aws_iid::AttestationData;
use spire_testkit::aws_iid::{Identity, IidSigner, document};
use tonic::Code;

use super::verify::{CaCertificates, verify_document};
use super::*;

fn trusting(signer: &IidSigner) -> CaCertificates {
    CaCertificates::TestOnly(vec![signer.certificate_der().to_vec()])
}

fn payload(identity: &Identity) -> AttestationData {
    AttestationData {
        document: identity.document.clone(),
        signature: identity.signature.clone(),
        signature_rsa2048: identity.rsa2048.clone(),
    }
}

fn doc() -> String {
    document("123456789012", "us-west-2", "i-0123456789abcdef0", "ami-12345678")
}

#[test]
fn an_rsa2048_signature_from_the_trusted_certificate_verifies() {
    let aws = IidSigner::generate();
    let parsed = verify_document(&payload(&Identity::signed(&aws, &doc())), &trusting(&aws)).unwrap();
    assert_eq!(parsed.account_id, "123456789012");
    assert_eq!(parsed.region, "us-west-2");
    assert_eq!(parsed.availability_zone, "us-west-2a");
    assert_eq!(parsed.instance_id, "i-0123456789abcdef0");
}

#[test]
fn the_rsa1024_signature_is_used_when_rsa2048_is_absent() {
    let aws = IidSigner::generate();
    let mut data = payload(&Identity::signed(&aws, &doc()));
    data.signature_rsa2048.clear();
    verify_document(&data, &trusting(&aws)).unwrap();
    data.signature = IidSigner::generate().sign_rsa1024(&doc());
    let err = verify_document(&data, &trusting(&aws)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "rpc error: code = InvalidArgument desc = failed to verify the cryptographic signature: crypto/rsa: verification error"
    );
    data.signature = "!!".into();
    let err = verify_document(&data, &trusting(&aws)).unwrap_err();
    assert!(
        err.to_string().contains("failed to decode the IID signature: illegal base64 data at input byte 0"),
        "{err}"
    );
}

#[test]
fn another_key_is_refused() {
    let aws = IidSigner::generate();
    // Same issuer and serial as AWS's certificate, another key: the RSA check fails.
    let forger = IidSigner::impostor_of(&aws);
    let err = verify_document(&payload(&Identity::signed(&forger, &doc())), &trusting(&aws)).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.to_string(),
        "failed verification of instance identity cryptographic signature: crypto/rsa: verification error"
    );
    // Another certificate altogether: no certificate for the signer.
    let stranger = IidSigner::generate();
    let err = verify_document(&payload(&Identity::signed(&stranger, &doc())), &trusting(&aws)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed verification of instance identity cryptographic signature: pkcs7: No certificate for signer"
    );
}

#[test]
fn the_signed_document_must_be_the_one_sent() {
    let aws = IidSigner::generate();
    let mut data = payload(&Identity::signed(&aws, &doc()));
    data.document = document("999999999999", "us-west-2", "i-0123456789abcdef0", "ami-12345678");
    assert_eq!(verify_document(&data, &trusting(&aws)).unwrap_err(), AttestError::DocumentMismatch);
}

#[test]
fn aws_certificates_refuse_a_test_signature() {
    let aws = IidSigner::generate();
    let err = verify_document(&payload(&Identity::signed(&aws, &doc())), &CaCertificates::Aws).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed verification of instance identity cryptographic signature: pkcs7: No certificate for signer"
    );
    let other_region = document("1", "mars-1", "i-1", "ami-1");
    let err = verify_document(&payload(&Identity::signed(&aws, &other_region)), &CaCertificates::Aws).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to load the AWS CA certificate for region \"mars-1\": unsupported region \"mars-1\""
    );
}

#[test]
fn malformed_signatures_and_documents() {
    let aws = IidSigner::generate();
    let cas = trusting(&aws);
    let mut data = payload(&Identity::signed(&aws, &doc()));
    data.signature_rsa2048 = "%%%".into();
    assert_eq!(verify_document(&data, &cas).unwrap_err(), AttestError::Pkcs7Decode);
    data.signature_rsa2048 = "AAAA".into();
    assert!(
        verify_document(&data, &cas)
            .unwrap_err()
            .to_string()
            .starts_with("failed to parse the instance identity cryptographic signature: pkcs7: ")
    );
    data.signature_rsa2048.clear();
    data.signature.clear();
    assert_eq!(verify_document(&data, &cas).unwrap_err(), AttestError::MissingSignature);
    data.document = "[1]".into();
    assert_eq!(
        verify_document(&data, &cas).unwrap_err().to_string(),
        "failed to unmarshal the IID: json: cannot unmarshal array into Go value of type imds.InstanceIdentityDocument"
    );
}

#[derive(Debug)]
struct NoAgents;

#[async_trait::async_trait]
impl AgentStore for NoAgents {
    async fn is_attested(&self, _: &SpiffeId) -> Result<bool, Status> {
        Ok(false)
    }
}

#[tokio::test]
async fn payload_refusals_come_before_any_aws_call() {
    let plugin = crate::catalog::nodeattestor::test_plugin("aws_iid", "");
    let config = AwsIidConfig::from_plugin_with_env(&plugin, &|_| String::new()).unwrap();
    let td = TrustDomain::parse("example.org").unwrap();
    let attestor = AwsIidAttestor::from_config(config, td, Arc::new(NoAgents)).unwrap();
    assert_eq!(attestor.attest_payload(b"").await.unwrap_err(), AttestError::MissingPayload);
    let status = Status::from(attestor.attest_payload(b"{").await.unwrap_err());
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("nodeattestor(aws_iid): failed to unmarshal the attestation data: "),
        "{}",
        status.message()
    );
}

#[test]
fn agent_ids_follow_the_template() {
    let td = TrustDomain::parse("example.org").unwrap();
    let data = TemplateData {
        plugin_name: NAME.into(),
        account_id: "123".into(),
        region: "us-east-1".into(),
        instance_id: "i-1".into(),
        tags: Default::default(),
    };
    let t = Template::parse(template::DEFAULT).unwrap();
    assert_eq!(
        agent_id(&td, &t, data.clone()).unwrap().to_string(),
        "spiffe://example.org/spire/agent/aws_iid/123/us-east-1/i-1"
    );
    let t = Template::parse("/{{ index .Tags \"missing\" }}").unwrap();
    assert!(
        agent_id(&td, &t, data)
            .unwrap_err()
            .to_string()
            .starts_with("failed to create spiffe ID: invalid agent path suffix \"/\"")
    );
}
