//! The plugin against a software TPM provisioned by the test (`swtpm`, `tpm2-tools`, `openssl`):
//! what the payload carries checks out with the server's parsers, and the passwords and missing
//! pieces fail with SPIRE's messages. (The server's side and the challenges are end to end in
//! crates/interop/tests/tpm_devid.rs.)

use std::path::Path;

use spire_attestation::tpm_devid::tpm::{Public, certified_name, name_matches, verify_rsa_signature};
use spire_testkit::openssl::{ca as openssl_ca, issue_for_key as openssl_issue};
use spire_testkit::swtpm::{DevIdFiles, DevIdKind, Swtpm};

use super::*;

fn config(tpm: &Swtpm, dir: &Path, devid: &DevIdFiles, passwords: Passwords) -> TpmDevIdConfig {
    TpmDevIdConfig {
        devid_cert_path: dir.join("devid.pem"),
        devid_priv_path: devid.private_blob.clone(),
        devid_pub_path: devid.public_blob.clone(),
        passwords,
        tpm_device_path: Some(tpm.socket.clone()),
    }
}

/// A TPM with a DevID (password `devid_password`) and its certificate; with an EK certificate if
/// `ek_cert`.
fn provisioned(dir: &Path, ek_cert: bool, devid_password: &str) -> Option<(Swtpm, DevIdFiles)> {
    let tpm = Swtpm::start()?;
    openssl_ca(dir, "manufacturer");
    openssl_ca(dir, "devid-ca");
    if ek_cert {
        tpm.provision_ek(dir, "manufacturer");
    }
    let devid = tpm.create_devid(dir, "devid", DevIdKind::Ecc, devid_password);
    openssl_issue(dir, "devid-ca", &devid.public_pem, "node", "1", &dir.join("devid.pem"));
    Some((tpm, devid))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_payload_holds_a_certification_the_server_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((tpm, devid)) = provisioned(tmp.path(), true, "") else { return };
    let attestor = TpmDevIdAttestor::from_config(config(&tpm, tmp.path(), &devid, Passwords::default())).unwrap();
    let payload = AttestationRequest::from_json(&attestor.payload().await.unwrap()).unwrap();
    assert_eq!(payload.devid_pub, std::fs::read(&devid.public_blob).unwrap());
    assert_eq!(payload.ek_cert, std::fs::read(tmp.path().join("ek-cert.der")).unwrap());
    let ak = Public::parse(&payload.ak_pub).unwrap();
    // The attributes the server requires, as the TPM reports them.
    assert!(ak.is_resident_restricted_signer(), "{:#x}", ak.attribute_bits());
    assert!(Public::parse(&payload.devid_pub).unwrap().is_fixed_signer());
    verify_rsa_signature(&ak, &payload.certified_devid, &payload.certification_signature).unwrap();
    let name = certified_name(&payload.certified_devid).unwrap();
    assert!(name_matches(&name, &Public::parse(&payload.devid_pub).unwrap()).unwrap());
    Public::parse(&payload.ek_pub).unwrap();
    // A second attempt (re-attestation) starts over with a new AK; the TPM's slots are not leaked.
    for _ in 0..3 {
        let again = AttestationRequest::from_json(&attestor.payload().await.unwrap()).unwrap();
        assert_ne!(again.ak_pub, payload.ak_pub);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_as_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((tpm, devid)) = provisioned(tmp.path(), true, "devid-secret") else { return };
    tpm.tpm2(tmp.path(), "changeauth", &["-c", "o", "owner-secret"]);
    tpm.tpm2(tmp.path(), "changeauth", &["-c", "e", "endorsement-secret"]);
    let right = Passwords {
        devid_key: "devid-secret".into(),
        owner_hierarchy: "owner-secret".into(),
        endorsement_hierarchy: "endorsement-secret".into(),
    };
    let attest = |passwords: Passwords| {
        let attestor = TpmDevIdAttestor::from_config(config(&tpm, tmp.path(), &devid, passwords)).unwrap();
        async move { attestor.payload().await.map_err(|e| e.to_string()) }
    };
    attest(right.clone()).await.unwrap();
    let err = attest(Passwords { owner_hierarchy: "wrong".into(), ..right.clone() }).await.unwrap_err();
    assert!(
        err.starts_with(
            "unable to start a new TPM session: cannot load DevID key on TPM: tpm2.CreatePrimaryEx failed: TPM error"
        ),
        "{err}"
    );
    let err = attest(Passwords { endorsement_hierarchy: "wrong".into(), ..right.clone() }).await.unwrap_err();
    assert!(err.starts_with("unable to start a new TPM session: cannot create endorsement key: TPM error"), "{err}");
    let err = attest(Passwords { devid_key: "wrong".into(), ..right }).await.unwrap_err();
    assert!(err.starts_with("unable to certify DevID key: tpm2.Certify failed: TPM error"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tpm_without_an_ek_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((tpm, devid)) = provisioned(tmp.path(), false, "") else { return };
    let attestor = TpmDevIdAttestor::from_config(config(&tpm, tmp.path(), &devid, Passwords::default())).unwrap();
    let err = attestor.payload().await.unwrap_err().to_string();
    assert!(
        err.starts_with("unable to get endorsement certificate: failed to read NV index 01c00002: TPM error"),
        "{err}"
    );
    let err = attestor.challenge(b"{}").await.unwrap_err().to_string();
    assert_eq!(err, "no TPM session: the payload was not sent");
}
