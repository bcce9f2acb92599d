//! A small test PKI built with the identity core (root CA -> intermediate CA -> leaf), and rcgen
//! helpers to hand-craft certificates that break one rule at a time.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;
use spire_identity::x509::{self, CaParams, Issuer, Subject, SvidParams};
use spire_identity::{Bundle, BundleSet, KeyType, PrivateKey, SpiffeId, TrustDomain};

/// One hour.
pub const HOUR: Duration = Duration::from_secs(3600);

/// The current time.
pub fn now() -> SystemTime {
    SystemTime::now()
}

/// `example.org`.
pub fn td() -> TrustDomain {
    TrustDomain::parse("example.org").unwrap()
}

/// Parses a SPIFFE ID, panicking on bad test input.
pub fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

/// A root and an intermediate CA of `example.org`, made by the identity core.
#[derive(Debug)]
pub struct Pki {
    /// The self-signed root, the bundle's one authority.
    pub root: Issuer,
    /// An intermediate under the root, which signs leaves.
    pub intermediate: Issuer,
}

impl Pki {
    /// A fresh PKI with keys of `key_type`.
    pub fn new(key_type: KeyType) -> Self {
        let td = td();
        let root_key = PrivateKey::generate(key_type).unwrap();
        let root_der = x509::self_signed_ca(
            &CaParams {
                trust_domain: &td,
                public_key_der: &root_key.public_key_der(),
                subject: Subject::default_ca(),
                now: now(),
                ttl: 24 * HOUR,
            },
            &root_key,
        )
        .unwrap();
        let root = Issuer::new(root_der, root_key).unwrap();
        let inter_key = PrivateKey::generate(key_type).unwrap();
        let inter_der = x509::sign_ca(
            &CaParams {
                trust_domain: &td,
                public_key_der: &inter_key.public_key_der(),
                subject: Subject::default_ca(),
                now: now(),
                ttl: 12 * HOUR,
            },
            &root,
        )
        .unwrap();
        let intermediate = Issuer::new(inter_der, inter_key).unwrap();
        Self { root, intermediate }
    }

    /// The bundle of `example.org` holding the root.
    pub fn bundle(&self) -> Bundle {
        let mut b = Bundle::new(td());
        b.add_x509_authority(self.root.cert_der().to_vec()).unwrap();
        b
    }

    /// [`Self::bundle`] as a bundle set.
    pub fn bundles(&self) -> BundleSet {
        self.bundle().into()
    }

    /// A leaf for `spiffe_id` issued by the intermediate: (chain leaf-first, leaf key).
    pub fn leaf(&self, spiffe_id: &str, dns: &[String]) -> (Vec<Vec<u8>>, PrivateKey) {
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let leaf = x509::sign_svid(
            &SvidParams {
                spiffe_id: &id(spiffe_id),
                public_key_der: &key.public_key_der(),
                dns_names: dns,
                subject: None,
                now: now(),
                ttl: HOUR,
            },
            &self.intermediate,
        )
        .unwrap();
        (vec![leaf, self.intermediate.cert_der().to_vec()], key)
    }
}

/// rcgen parameters equivalent to the identity core's leaf template, for tests to break.
pub fn leaf_params(spiffe_id: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::OrganizationName, "SPIRE");
    p.distinguished_name = dn;
    p.subject_alt_names = vec![SanType::URI(spiffe_id.try_into().unwrap())];
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    p.not_before = time::OffsetDateTime::now_utc() - time::Duration::seconds(10);
    p.not_after = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    p.use_authority_key_identifier_extension = true;
    p
}

/// rcgen parameters equivalent to the identity core's CA template.
pub fn ca_params() -> CertificateParams {
    let mut p = leaf_params("spiffe://example.org");
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::OrganizationName, "SPIFFE");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.extended_key_usages = vec![];
    p.not_after = time::OffsetDateTime::now_utc() + time::Duration::hours(12);
    p
}

fn rc_key(key: &PrivateKey) -> rcgen::KeyPair {
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from(key.pkcs8_der());
    let alg = match key.key_type() {
        KeyType::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        _ => &rcgen::PKCS_RSA_SHA256,
    };
    rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, alg).unwrap()
}

/// Signs `params` for a fresh EC key with `issuer`.
pub fn sign_with(params: &mut CertificateParams, issuer: &Issuer) -> (Vec<u8>, PrivateKey) {
    sign_with_raw(params, issuer.cert_der(), issuer.key().as_local().expect("the test PKI holds its keys"))
}

/// Signs `params` for a fresh EC key with any certificate and key, CA or not.
pub fn sign_with_raw(
    params: &mut CertificateParams,
    issuer_der: &[u8],
    issuer_key: &PrivateKey,
) -> (Vec<u8>, PrivateKey) {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let subject_key = rc_key(&key);
    params.key_identifier_method = KeyIdMethod::PreSpecified(x509::key_identifier(&key.public_key_der()).unwrap());
    let issuer_key = rc_key(issuer_key);
    let rc_issuer = rcgen::Issuer::from_ca_cert_der(&CertificateDer::from(issuer_der.to_vec()), &issuer_key).unwrap();
    let cert = params.signed_by(&subject_key, &rc_issuer).unwrap();
    (cert.der().to_vec(), key)
}
