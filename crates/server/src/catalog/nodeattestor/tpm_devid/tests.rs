//! The attestation flow against a TPM made of software keys here (rcgen, aws-lc-rs): the EK and AK
//! are RSA keys whose TPM public areas are built by hand, the AK's certification and the credential
//! activation are computed as a TPM computes them. The same flow against a real (software) TPM is
//! crates/interop/tests/tpm_devid.rs.

use aws_lc_rs::cipher::{AES_128, DecryptingKey, DecryptionContext, UnboundCipherKey};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use aws_lc_rs::signature::{self, KeyPair as _};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use spire_attestation::tpm_devid::tpm::{HashAlg, name_with};
use spire_attestation::x509pop::fingerprint;
use tonic::Code;

use super::credential::kdfa;
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

fn cert(issuer: &Ca, key: &KeyPair, cn: &str) -> Vec<u8> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.signed_by(key, &issuer.issuer).unwrap().der().to_vec()
}

fn u16b(v: &[u8]) -> Vec<u8> {
    [&u16::try_from(v.len()).unwrap().to_be_bytes()[..], v].concat()
}

/// The TCG default RSA EK template (go-tpm-tools `DefaultEKTemplateRSA`) with `modulus`.
fn ek_public(modulus: &[u8]) -> Vec<u8> {
    const POLICY: [u8; 32] = [
        0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52,
        0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
    ];
    [
        &[0x00, 0x01, 0x00, 0x0b][..],
        &0x0003_00b2u32.to_be_bytes(),
        &u16b(&POLICY),
        &[0x00, 0x06, 0x00, 0x80, 0x00, 0x43, 0x00, 0x10, 0x08, 0x00, 0, 0, 0, 0],
        &u16b(modulus),
    ]
    .concat()
}

/// go-tpm-tools' `AKTemplateRSA` with `modulus`.
fn ak_public(modulus: &[u8]) -> Vec<u8> {
    [
        &[0x00, 0x01, 0x00, 0x0b][..],
        &0x0005_0472u32.to_be_bytes(),
        &[0, 0, 0x00, 0x10, 0x00, 0x14, 0x00, 0x0b, 0x08, 0x00, 0, 0, 0, 0],
        &u16b(modulus),
    ]
    .concat()
}

/// An unrestricted ECDSA-SHA256 signing key's public area (fixedTPM, fixedParent,
/// sensitiveDataOrigin, userWithAuth, sign: the testkit's DevID) for an uncompressed NIST point.
fn devid_public(point: &[u8]) -> Vec<u8> {
    let curve: u8 = match point.len() {
        65 => 0x03,
        97 => 0x04,
        133 => 0x05,
        n => panic!("point of {n} bytes"),
    };
    let half = (point.len() - 1) / 2;
    [
        &[0x00, 0x23, 0x00, 0x0b][..],
        &0x0004_0072u32.to_be_bytes(),
        &[0, 0, 0x00, 0x10, 0x00, 0x18, 0x00, 0x0b, 0x00, curve, 0x00, 0x10],
        &u16b(&point[1..=half]),
        &u16b(&point[half + 1..]),
    ]
    .concat()
}

/// Sets the `TPMA_OBJECT` of a `TPMT_PUBLIC` (after its type and name algorithm).
fn set_attributes(public: &mut [u8], bits: u32) {
    public[4..8].copy_from_slice(&bits.to_be_bytes());
}

fn modulus_of(kp: &aws_lc_rs::rsa::KeyPair) -> Vec<u8> {
    aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(kp.public_key()).n
}

/// One TPM's keys and the DevID it holds.
struct SoftTpm {
    ek: PrivateDecryptingKey,
    ek_pub: Vec<u8>,
    ek_cert: Vec<u8>,
    ak: aws_lc_rs::rsa::KeyPair,
    ak_pub: Vec<u8>,
    devid: signature::EcdsaKeyPair,
    devid_pub: Vec<u8>,
    devid_cert: Vec<u8>,
}

impl SoftTpm {
    fn new(manufacturer: &Ca, devid_ca: &Ca) -> Self {
        Self::with_devid(
            manufacturer,
            devid_ca,
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        )
    }

    /// A TPM whose DevID key is of `kind` (and signs nonces with `signing`).
    fn with_devid(
        manufacturer: &Ca,
        devid_ca: &Ca,
        kind: &'static rcgen::SignatureAlgorithm,
        signing: &'static signature::EcdsaSigningAlgorithm,
    ) -> Self {
        let ek_key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let ek = PrivateDecryptingKey::from_pkcs8(&ek_key.serialize_der()).unwrap();
        let ek_modulus = modulus_of(&aws_lc_rs::rsa::KeyPair::from_pkcs8(&ek_key.serialize_der()).unwrap());
        let ak_key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let ak = aws_lc_rs::rsa::KeyPair::from_pkcs8(&ak_key.serialize_der()).unwrap();
        let devid_key = KeyPair::generate_for(kind).unwrap();
        let devid = signature::EcdsaKeyPair::from_pkcs8(signing, &devid_key.serialize_der()).unwrap();
        Self {
            ek_pub: ek_public(&ek_modulus),
            ek_cert: cert(manufacturer, &ek_key, "ek"),
            ek,
            ak_pub: ak_public(&modulus_of(&ak)),
            ak,
            devid_pub: devid_public(devid.public_key().as_ref()),
            devid_cert: cert(devid_ca, &devid_key, "node-1"),
            devid,
        }
    }

    /// TPM2_Certify of the DevID key by the AK: the `TPMS_ATTEST` and its `TPMT_SIGNATURE`.
    fn certify(&self, object_public: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let name = name_with(HashAlg::Sha256, object_public).unwrap();
        let ak_name = name_with(HashAlg::Sha256, &self.ak_pub).unwrap();
        let attest = [
            &[0xff, 0x54, 0x43, 0x47, 0x80, 0x17][..],
            &u16b(&ak_name),
            &[0, 0],
            &[0; 17],
            &[0; 8],
            &u16b(&name),
            &u16b(&name),
        ]
        .concat();
        let mut sig = vec![0; self.ak.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.ak.sign(&signature::RSA_PKCS1_SHA256, &rng, &attest, &mut sig).unwrap();
        (attest, [&[0x00, 0x14, 0x00, 0x0b][..], &u16b(&sig)].concat())
    }

    fn payload(&self) -> AttestationRequest {
        let (certified_devid, certification_signature) = self.certify(&self.devid_pub);
        AttestationRequest {
            devid_cert: vec![self.devid_cert.clone()],
            devid_pub: self.devid_pub.clone(),
            ek_cert: self.ek_cert.clone(),
            ek_pub: self.ek_pub.clone(),
            ak_pub: self.ak_pub.clone(),
            certified_devid,
            certification_signature,
        }
    }

    /// TPM2_ActivateCredential with this TPM's EK, for its AK.
    fn activate(&self, c: &CredActivation) -> Option<Vec<u8>> {
        let oaep = OaepPrivateDecryptingKey::new(self.ek.clone()).unwrap();
        let mut seed = vec![0; oaep.min_output_size()];
        let seed = oaep.decrypt(&OAEP_SHA256_MGF1SHA256, &c.secret, &mut seed, Some(b"IDENTITY\0")).ok()?.to_vec();
        let name = name_with(HashAlg::Sha256, &self.ak_pub).unwrap();
        let (len, rest) = c.credential.split_at(2);
        let (mac, enc) = rest.split_at(usize::from(u16::from_be_bytes([len[0], len[1]])));
        let hmac_key = hmac::Key::new(hmac::HMAC_SHA256, &kdfa(HashAlg::Sha256, &seed, b"INTEGRITY", &[], &[], 256));
        hmac::verify(&hmac_key, &[enc, &name].concat(), mac).ok()?;
        let sym = kdfa(HashAlg::Sha256, &seed, b"STORAGE", &name, &[], 128);
        let key = DecryptingKey::cfb128(UnboundCipherKey::new(&AES_128, &sym).unwrap()).unwrap();
        let mut plain = enc.to_vec();
        key.decrypt(&mut plain, DecryptionContext::Iv128(FixedLength::from([0u8; 16]))).unwrap();
        Some(plain[2..].to_vec())
    }

    fn answer(&self, challenge: &[u8]) -> Vec<u8> {
        let c = ChallengeRequest::from_json(challenge).unwrap();
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let devid = self.devid.sign(&rng, &c.devid).unwrap().as_ref().to_vec();
        let cred_activation = self.activate(c.cred_activation.as_ref().unwrap()).unwrap_or_default();
        ChallengeResponse { devid, cred_activation }.to_json()
    }
}

/// Answers with a closure over the challenge.
struct Answer<F: FnMut(&[u8]) -> Vec<u8> + Send>(F);

#[async_trait::async_trait]
impl<F: FnMut(&[u8]) -> Vec<u8> + Send> Challenger for Answer<F> {
    async fn challenge(&mut self, challenge: Vec<u8>) -> Result<Vec<u8>, Status> {
        Ok((self.0)(&challenge))
    }
}

fn td() -> TrustDomain {
    TrustDomain::parse("example.org").unwrap()
}

struct World {
    manufacturer: Ca,
    devid_ca: Ca,
    tpm: SoftTpm,
}

fn world() -> World {
    let manufacturer = ca("manufacturer");
    let devid_ca = ca("devid-ca");
    let tpm = SoftTpm::new(&manufacturer, &devid_ca);
    World { manufacturer, devid_ca, tpm }
}

impl World {
    fn attestor(&self) -> TpmDevIdAttestor {
        TpmDevIdAttestor::new(td(), vec![self.devid_ca.der.clone()], vec![self.manufacturer.der.clone()])
    }

    async fn attest(&self, payload: &AttestationRequest) -> Result<AttestResult, Status> {
        self.attestor().attest_payload(&payload.to_json(), &mut Answer(|c: &[u8]| self.tpm.answer(c))).await
    }
}

fn refused(r: Result<AttestResult, Status>, code: Code, message: &str) {
    let s = r.unwrap_err();
    assert_eq!(s.code(), code, "{}", s.message());
    assert_eq!(s.message(), format!("nodeattestor(tpm_devid): {message}"));
}

#[tokio::test]
async fn attests_with_spire_agent_id_and_selectors() {
    let w = world();
    let result = w.attest(&w.tpm.payload()).await.unwrap();
    assert_eq!(
        result.agent_id.to_string(),
        format!("spiffe://example.org/spire/agent/tpm_devid/{}", fingerprint(&w.tpm.devid_cert))
    );
    assert_eq!(
        result.selector_values,
        [
            "subject:cn:node-1".to_owned(),
            "issuer:cn:devid-ca".into(),
            format!("ca:fingerprint:{}", fingerprint(&w.devid_ca.der))
        ]
    );
    assert!(result.can_reattest);
}

#[tokio::test]
async fn a_chain_through_an_intermediate_gives_one_selector_per_ca() {
    let w = world();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "devid-intermediate");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let intermediate =
        Ca { der: p.signed_by(&key, &w.devid_ca.issuer).unwrap().der().to_vec(), issuer: Issuer::new(p, key) };
    let tpm = SoftTpm::new(&w.manufacturer, &intermediate);
    let mut payload = tpm.payload();
    payload.devid_cert.push(intermediate.der.clone());
    let result = w.attestor().attest_payload(&payload.to_json(), &mut Answer(|c: &[u8]| tpm.answer(c))).await.unwrap();
    assert_eq!(
        result.selector_values,
        [
            "subject:cn:node-1".to_owned(),
            "issuer:cn:devid-intermediate".into(),
            format!("ca:fingerprint:{}", fingerprint(&intermediate.der)),
            format!("ca:fingerprint:{}", fingerprint(&w.devid_ca.der)),
        ]
    );
}

/// An EK certificate shaped as manufacturers issue them (TCG EK Credential Profile): an empty
/// subject, the TPM's identity in a critical directoryName SAN, the EK certificate EKU, key
/// encipherment only.
fn manufacturer_style_ek_cert(manufacturer: &Ca, ek_pkcs8: &[u8]) -> Vec<u8> {
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        assert!(content.len() < 128);
        [&[tag, u8::try_from(content.len()).unwrap()][..], content].concat()
    }
    let attribute = |last: u8, value: &str| {
        tlv(0x31, &tlv(0x30, &[tlv(0x06, &[0x67, 0x81, 0x05, 0x02, last]), tlv(0x0c, value.as_bytes())].concat()))
    };
    let name = tlv(0x30, &[attribute(1, "id:53574D20"), attribute(2, "SWTPM"), attribute(3, "id:20191023")].concat());
    let san = tlv(0x30, &tlv(0xa4, &name));
    let mut ext = rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 17], san);
    ext.set_criticality(true);
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::Other(vec![2, 23, 133, 8, 1])];
    p.custom_extensions = vec![ext];
    let key = KeyPair::try_from(ek_pkcs8).unwrap();
    p.signed_by(&key, &manufacturer.issuer).unwrap().der().to_vec()
}

#[tokio::test]
async fn accepts_an_ek_certificate_as_manufacturers_make_them() {
    let manufacturer = ca("manufacturer");
    let devid_ca = ca("devid-ca");
    let ek_key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let mut tpm = SoftTpm::new(&manufacturer, &devid_ca);
    tpm.ek = PrivateDecryptingKey::from_pkcs8(&ek_key.serialize_der()).unwrap();
    tpm.ek_pub = ek_public(&modulus_of(&aws_lc_rs::rsa::KeyPair::from_pkcs8(&ek_key.serialize_der()).unwrap()));
    tpm.ek_cert = manufacturer_style_ek_cert(&manufacturer, &ek_key.serialize_der());
    let (_, parsed) = x509_parser::parse_x509_certificate(&tpm.ek_cert).unwrap();
    assert!(parsed.subject().iter().next().is_none());
    assert!(parsed.extensions().iter().any(|e| e.oid.to_id_string() == "2.5.29.17" && e.critical));
    let w = World { manufacturer, devid_ca, tpm };
    w.attest(&w.tpm.payload()).await.unwrap();
}

#[tokio::test]
async fn refuses_a_devid_from_another_ca() {
    let w = world();
    let other = ca("other");
    let mut payload = w.tpm.payload();
    payload.devid_cert = vec![SoftTpm::new(&w.manufacturer, &other).devid_cert];
    refused(
        w.attest(&payload).await,
        Code::InvalidArgument,
        "unable to verify DevID signature: verification failed: x509: certificate signed by unknown authority",
    );
}

#[tokio::test]
async fn refuses_an_ek_from_another_manufacturer_or_not_the_tpms() {
    let w = world();
    let elsewhere = SoftTpm::new(&ca("rogue"), &w.devid_ca);
    let mut payload = w.tpm.payload();
    payload.ek_cert = elsewhere.ek_cert.clone();
    refused(
        w.attest(&payload).await,
        Code::InvalidArgument,
        "public key in EK certificate differs from public key created via EK template: modulus mismatch",
    );
    payload.ek_pub = elsewhere.ek_pub.clone();
    refused(
        w.attest(&payload).await,
        Code::InvalidArgument,
        "cannot verify EK signature: endorsement certificate verification failed: x509: certificate signed by unknown authority",
    );
}

#[tokio::test]
async fn refuses_a_devid_key_the_ak_did_not_certify() {
    let w = world();
    let other = SoftTpm::new(&w.manufacturer, &w.devid_ca);
    let mut payload = w.tpm.payload();
    payload.devid_pub = other.devid_pub.clone();
    refused(
        w.attest(&payload).await,
        Code::InvalidArgument,
        "cannot verify that DevID is in the same TPM than AK: certify failed",
    );
    // The AK certifying a key that is not the DevID certificate's (SPIRE would accept this).
    let mut payload = w.tpm.payload();
    (payload.certified_devid, payload.certification_signature) = w.tpm.certify(&other.devid_pub);
    payload.devid_pub = other.devid_pub.clone();
    refused(
        w.attest(&payload).await,
        Code::InvalidArgument,
        "cannot verify that DevID is in the same TPM than AK: DevID certificate's key is not the certified DevID key",
    );
    let mut payload = w.tpm.payload();
    payload.certification_signature = other.certify(&w.tpm.devid_pub).1;
    refused(
        w.attest(&payload).await,
        Code::InvalidArgument,
        "cannot verify that DevID is in the same TPM than AK: crypto/rsa: verification error",
    );
}

/// A P-521 DevID key (its nonce signature is ECDSA over SHA-256, as SPIRE's agent makes it).
#[tokio::test]
async fn accepts_a_p521_devid_key() {
    let w = world();
    let tpm = SoftTpm::with_devid(
        &w.manufacturer,
        &w.devid_ca,
        &rcgen::PKCS_ECDSA_P521_SHA512,
        &signature::ECDSA_P521_SHA256_ASN1_SIGNING,
    );
    assert_eq!(tpm.devid.public_key().as_ref().len(), 133);
    let result = w.attestor().attest_payload(&tpm.payload().to_json(), &mut Answer(|c: &[u8]| tpm.answer(c))).await;
    assert_eq!(result.unwrap().selector_values[0], "subject:cn:node-1");
}

/// Route a of a copied DevID key: the thief's genuine TPM (trusted EK, credential activated
/// honestly) with an unrestricted signing AK, which signs a `TPMS_ATTEST` the thief wrote naming
/// the copied key. Also an AK that could decrypt, or that is not fixed to its TPM.
#[tokio::test]
async fn refuses_an_ak_that_is_not_a_restricted_signer_fixed_to_its_tpm() {
    let mut w = world();
    w.attest(&w.tpm.payload()).await.unwrap();
    for bits in [
        0x0004_0072u32, // sign | fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth: unrestricted
        0x0007_0072,    // restricted sign and decrypt
        0x0005_0070,    // not fixedTPM
        0x0005_0062,    // not fixedParent
        0x0005_0052,    // not sensitiveDataOrigin (imported)
    ] {
        set_attributes(&mut w.tpm.ak_pub, bits);
        refused(
            w.attest(&w.tpm.payload()).await,
            Code::InvalidArgument,
            &format!(
                "attestation key is not a restricted signing key resident in its TPM (attributes 0x{bits:08x}; needs sign, restricted, fixedTPM, fixedParent, sensitiveDataOrigin and not decrypt)"
            ),
        );
    }
    // go-tpm-tools' `AKTemplateRSA`, which SPIRE's agent uses (no noDA), is fine.
    set_attributes(&mut w.tpm.ak_pub, 0x0005_0072);
    w.attest(&w.tpm.payload()).await.unwrap();
}

/// Route b of a copied DevID key: the key imported (or loaded) into the thief's genuine TPM and
/// certified there by a genuine restricted AK. The TPM cannot set fixedTPM on such a key.
#[tokio::test]
async fn refuses_a_devid_key_that_is_not_fixed_to_its_tpm() {
    let mut w = world();
    for bits in [
        0x0004_0050u32, // imported: sign | fixedParent | userWithAuth
        0x0004_0040,    // loaded as external / duplicable: sign | userWithAuth
        0x0000_0072,    // fixed to the TPM, but not a signing key
    ] {
        set_attributes(&mut w.tpm.devid_pub, bits);
        refused(
            w.attest(&w.tpm.payload()).await,
            Code::InvalidArgument,
            &format!(
                "DevID key is not a signing key fixed to its TPM (attributes 0x{bits:08x}; needs sign and fixedTPM)"
            ),
        );
    }
}

#[tokio::test]
async fn refuses_an_ak_from_another_tpm_than_the_ek() {
    // The DevID and AK of one TPM presented with another TPM's (trusted) EK: that TPM cannot
    // open the credential, and without it the answer is wrong.
    let w = world();
    let other = SoftTpm::new(&w.manufacturer, &w.devid_ca);
    let mut payload = w.tpm.payload();
    payload.ek_cert = other.ek_cert.clone();
    payload.ek_pub = other.ek_pub.clone();
    refused(w.attest(&payload).await, Code::InvalidArgument, "credential activation failed: nonces are different");
}

#[tokio::test]
async fn refuses_a_nonce_not_signed_by_the_devid_key() {
    let w = world();
    let other = SoftTpm::new(&w.manufacturer, &w.devid_ca);
    let result = w
        .attestor()
        .attest_payload(
            &w.tpm.payload().to_json(),
            &mut Answer(|c: &[u8]| {
                let mut r = ChallengeResponse::from_json(&w.tpm.answer(c)).unwrap();
                r.devid = ChallengeResponse::from_json(&other.answer(c)).unwrap().devid;
                r.to_json()
            }),
        )
        .await;
    refused(result, Code::InvalidArgument, "devID challenge verification failed: x509: ECDSA verification failure");
}

#[tokio::test]
async fn refuses_malformed_payloads_with_spire_messages() {
    let w = world();
    let a = w.attestor();
    let never = &mut Answer(|_: &[u8]| unreachable!("no challenge"));
    refused(a.attest_payload(b"", never).await, Code::InvalidArgument, "missing attestation payload");
    let s = a.attest_payload(b"{", never).await.unwrap_err();
    assert!(
        s.message().starts_with("nodeattestor(tpm_devid): unable to unmarshall attestation data: "),
        "{}",
        s.message()
    );
    refused(a.attest_payload(b"{}", never).await, Code::InvalidArgument, "no DevID certificate to attest");
    let good = w.tpm.payload();
    for (edit, message) in [
        (
            Box::new(|p: &mut AttestationRequest| p.ak_pub.clear()) as Box<dyn Fn(&mut AttestationRequest)>,
            "missing attestation key public blob",
        ),
        (Box::new(|p: &mut AttestationRequest| p.devid_pub.clear()), "missing DevID key public blob"),
        (Box::new(|p: &mut AttestationRequest| p.ek_cert.clear()), "missing endorsement certificate"),
        (Box::new(|p: &mut AttestationRequest| p.ek_pub.clear()), "missing endorsement key public blob"),
        (Box::new(|p: &mut AttestationRequest| p.ek_pub = vec![1, 2, 3]), "cannot decode endorsement key public blob"),
    ] {
        let mut p = good.clone();
        edit(&mut p);
        refused(a.attest_payload(&p.to_json(), never).await, Code::InvalidArgument, message);
    }
    let mut p = good.clone();
    p.ak_pub = vec![0, 1];
    let s = a.attest_payload(&p.to_json(), never).await.unwrap_err();
    assert!(s.message().contains("cannot decode attestation key public blob: decoding TPMT_PUBLIC"), "{}", s.message());
}
