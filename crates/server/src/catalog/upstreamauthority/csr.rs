//! The certificate request the CA manager sends an upstream authority for a new X.509 CA, built as
//! SPIRE's `BuildUpstreamSignedX509CACSR` does: the CA subject (`ca_subject`) and the trust domain ID
//! as URI SAN, signed with the CA key.

use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, SanType};
use spire_identity::x509::{Subject, sign_request};
use spire_identity::{SigningKey, TrustDomain};

use super::UpstreamAuthorityError;

fn invalid(e: impl std::fmt::Display) -> UpstreamAuthorityError {
    UpstreamAuthorityError::Invalid(format!("building the CA signing request: {e}"))
}

/// A PKCS#10 request for the CA key `key` (local or held by the key manager): DER.
pub fn ca_csr(
    key: &SigningKey,
    trust_domain: &TrustDomain,
    subject: &Subject,
) -> Result<Vec<u8>, UpstreamAuthorityError> {
    let mut dn = DistinguishedName::new();
    for c in &subject.country {
        dn.push(DnType::CountryName, DnValue::PrintableString(c.clone().try_into().map_err(invalid)?));
    }
    for o in &subject.organization {
        dn.push(DnType::OrganizationName, DnValue::Utf8String(o.clone()));
    }
    for ou in &subject.organizational_unit {
        dn.push(DnType::OrganizationalUnitName, DnValue::Utf8String(ou.clone()));
    }
    if let Some(cn) = &subject.common_name {
        dn.push(DnType::CommonName, DnValue::Utf8String(cn.clone()));
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.subject_alt_names = vec![SanType::URI(trust_domain.id_string().try_into().map_err(invalid)?)];
    sign_request(&params, key).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spire_identity::{KeyType, PrivateKey};
    use x509_parser::prelude::{FromDer, X509CertificationRequest};

    use crate::api::csr::parse;

    #[test]
    fn carries_the_key_subject_and_trust_domain() {
        for key_type in [KeyType::EcP256, KeyType::Rsa2048] {
            let key = PrivateKey::generate(key_type).unwrap();
            let td = TrustDomain::parse("example.org").unwrap();
            let der = ca_csr(&SigningKey::from(&key), &td, &Subject::default_ca()).unwrap();
            assert_eq!(parse(&der).unwrap().public_key_der, key.public_key_der(), "signature checked");
            let (_, csr) = X509CertificationRequest::from_der(&der).unwrap();
            assert_eq!(csr.certification_request_info.subject.to_string(), "C=US, O=SPIFFE");
        }
    }
}
