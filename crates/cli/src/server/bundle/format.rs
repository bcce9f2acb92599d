//! Bundles as SPIRE prints and reads them: PEM certificates, or the SPIFFE bundle document indented by
//! four spaces with go-jose's member order (`use`, `kty`, `kid`, `crv`, `x`, `y`, `n`, `e`, `x5c`) and
//! `spiffe_sequence` before `spiffe_refresh_hint`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use spire_identity::jwk::Jwk;
use spire_identity::x509::{certs_from_pem, certs_to_pem};
use spire_identity::{Bundle, TrustDomain};
use spire_proto::spire::api::types::{Bundle as ApiBundle, JwtKey, X509Certificate};

use super::BundleFormat;
use crate::error::CliError;

/// The go-spiffe bundle document.
#[derive(Serialize)]
struct BundleDoc {
    keys: Vec<Jwk>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spiffe_sequence: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spiffe_refresh_hint: Option<i64>,
}

/// The bundle in `format`, as `bundle show` prints it.
pub(crate) fn render(bundle: &ApiBundle, format: BundleFormat) -> Result<String, CliError> {
    match format {
        BundleFormat::Pem => {
            Ok(certs_to_pem(&bundle.x509_authorities.iter().map(|c| c.asn1.clone()).collect::<Vec<_>>()))
        }
        BundleFormat::Spiffe => {
            let mut keys = Vec::new();
            for cert in &bundle.x509_authorities {
                let parsed = x509_parser::parse_x509_certificate(&cert.asn1)
                    .map_err(|e| CliError::msg(format!("unable to parse X.509 authority: {e}")))?
                    .1;
                let mut jwk = Jwk::from_spki(parsed.public_key().raw).map_err(|e| CliError::msg(e.to_string()))?;
                jwk.public_key_use = Some("x509-svid".into());
                jwk.x5c = Some(vec![STANDARD.encode(&cert.asn1)]);
                keys.push(jwk);
            }
            for key in &bundle.jwt_authorities {
                let mut jwk = Jwk::from_spki(&key.public_key).map_err(|e| CliError::msg(e.to_string()))?;
                jwk.public_key_use = Some("jwt-svid".into());
                jwk.kid = Some(key.key_id.clone());
                keys.push(jwk);
            }
            let doc = BundleDoc {
                keys,
                spiffe_sequence: (bundle.sequence_number > 0).then_some(bundle.sequence_number),
                spiffe_refresh_hint: (bundle.refresh_hint > 0).then_some(bundle.refresh_hint),
            };
            let mut out = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
            doc.serialize(&mut ser).map_err(|e| CliError::msg(e.to_string()))?;
            Ok(format!("{}\n", String::from_utf8_lossy(&out)))
        }
    }
}

/// The banner `bundle list` puts before each federated bundle: the bundle's `trust_domain` as the
/// server sends it (a bare name such as `domain1.test`; SPIRE prints the field as it is).
pub(crate) fn header(trust_domain: &str) -> String {
    let stars = "*".repeat(40);
    format!("{stars}\n* {trust_domain}\n{stars}\n")
}

/// Reads bundle data for `bundle set`/`federation`: PEM certificates, or a SPIFFE bundle for `id`.
pub(crate) fn parse(data: &[u8], format: BundleFormat, id: &str) -> Result<ApiBundle, CliError> {
    match format {
        BundleFormat::Pem => {
            let text = String::from_utf8_lossy(data);
            let certs =
                certs_from_pem(&text).map_err(|e| CliError::msg(format!("unable to parse bundle data: {e}")))?;
            if certs.is_empty() {
                return Err(CliError::msg("unable to parse bundle data: no PEM blocks"));
            }
            Ok(ApiBundle {
                trust_domain: id.to_owned(),
                x509_authorities: certs
                    .into_iter()
                    .map(|asn1| X509Certificate { asn1, ..Default::default() })
                    .collect(),
                ..Default::default()
            })
        }
        BundleFormat::Spiffe => {
            let td = TrustDomain::parse(id).map_err(|e| CliError::msg(e.go_spiffe_message()))?;
            let bundle = Bundle::from_spiffe_json(td.clone(), data)
                .map_err(|e| CliError::msg(format!("unable to parse to spiffe bundle: {e}")))?;
            Ok(ApiBundle {
                trust_domain: td.as_str().to_owned(),
                x509_authorities: bundle
                    .x509_authorities()
                    .iter()
                    .map(|asn1| X509Certificate { asn1: asn1.clone(), ..Default::default() })
                    .collect(),
                jwt_authorities: bundle
                    .jwt_authorities()
                    .iter()
                    .map(|a| JwtKey {
                        public_key: a.public_key_der.clone(),
                        key_id: a.key_id.clone(),
                        expires_at: a.expires_at,
                        ..Default::default()
                    })
                    .collect(),
                refresh_hint: bundle.refresh_hint.map(|h| h as i64).unwrap_or(0),
                sequence_number: bundle.sequence_number,
                ..Default::default()
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::bundle::list::listing;

    const CERT1_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBKjCB0aADAgECAgEBMAoGCCqGSM49BAMCMAAwIhgPMDAwMTAxMDEwMDAwMDBa
GA85OTk5MTIzMTIzNTk1OVowADBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABHyv
sCk5yi+yhSzNu5aquQwvm8a1Wh+qw1fiHAkhDni+wq+g3TQWxYlV51TCPH030yXs
RxvujD4hUUaIQrXk4KKjODA2MA8GA1UdEwEB/wQFMAMBAf8wIwYDVR0RAQH/BBkw
F4YVc3BpZmZlOi8vZG9tYWluMS50ZXN0MAoGCCqGSM49BAMCA0gAMEUCIA2dO09X
makw2ekuHKWC4hBhCkpr5qY4bI8YUcXfxg/1AiEA67kMyH7bQnr7OVLUrL+b9ylA
dZglS5kKnYigmwDh+/U=
-----END CERTIFICATE-----
";

    const CERT1_JWKS: &str = r#"{
    "keys": [
        {
            "use": "x509-svid",
            "kty": "EC",
            "crv": "P-256",
            "x": "fK-wKTnKL7KFLM27lqq5DC-bxrVaH6rDV-IcCSEOeL4",
            "y": "wq-g3TQWxYlV51TCPH030yXsRxvujD4hUUaIQrXk4KI",
            "x5c": [
                "MIIBKjCB0aADAgECAgEBMAoGCCqGSM49BAMCMAAwIhgPMDAwMTAxMDEwMDAwMDBaGA85OTk5MTIzMTIzNTk1OVowADBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABHyvsCk5yi+yhSzNu5aquQwvm8a1Wh+qw1fiHAkhDni+wq+g3TQWxYlV51TCPH030yXsRxvujD4hUUaIQrXk4KKjODA2MA8GA1UdEwEB/wQFMAMBAf8wIwYDVR0RAQH/BBkwF4YVc3BpZmZlOi8vZG9tYWluMS50ZXN0MAoGCCqGSM49BAMCA0gAMEUCIA2dO09Xmakw2ekuHKWC4hBhCkpr5qY4bI8YUcXfxg/1AiEA67kMyH7bQnr7OVLUrL+b9ylAdZglS5kKnYigmwDh+/U="
            ]
        }
    ],
    "spiffe_sequence": 42,
    "spiffe_refresh_hint": 60
}
"#;

    fn bundle1() -> ApiBundle {
        let mut b = parse(CERT1_PEM.as_bytes(), BundleFormat::Pem, "domain1.test").unwrap();
        b.sequence_number = 42;
        b.refresh_hint = 60;
        b
    }

    #[test]
    fn pem_and_spiffe_renderings() {
        let b = bundle1();
        assert_eq!(render(&b, BundleFormat::Pem).unwrap(), CERT1_PEM);
        assert_eq!(render(&b, BundleFormat::Spiffe).unwrap(), CERT1_JWKS);
    }

    #[test]
    fn jwt_keys_follow_x509_keys() {
        let mut b = bundle1();
        let cert = x509_parser::parse_x509_certificate(&b.x509_authorities[0].asn1).unwrap().1;
        b.jwt_authorities.push(JwtKey {
            public_key: cert.public_key().raw.to_vec(),
            key_id: "KID".into(),
            ..Default::default()
        });
        b.sequence_number = 0;
        b.refresh_hint = 0;
        let text = render(&b, BundleFormat::Spiffe).unwrap();
        assert!(
            text.ends_with(
                r#"        {
            "use": "jwt-svid",
            "kty": "EC",
            "kid": "KID",
            "crv": "P-256",
            "x": "fK-wKTnKL7KFLM27lqq5DC-bxrVaH6rDV-IcCSEOeL4",
            "y": "wq-g3TQWxYlV51TCPH030yXsRxvujD4hUUaIQrXk4KI"
        }
    ]
}
"#
            ),
            "{text}"
        );
    }

    #[test]
    fn list_banner_and_separation() {
        let mut b2 = bundle1();
        b2.trust_domain = "domain2.test".into();
        let text = listing(&[bundle1(), b2], BundleFormat::Pem).unwrap();
        let stars = "*".repeat(40);
        assert_eq!(
            text,
            format!("{stars}\n* domain1.test\n{stars}\n{CERT1_PEM}\n{stars}\n* domain2.test\n{stars}\n{CERT1_PEM}")
        );
    }

    #[test]
    fn parse_errors() {
        let err = parse(b"not pem", BundleFormat::Pem, "td").unwrap_err().to_string();
        assert!(err.starts_with("unable to parse bundle data"), "{err}");
        let err = parse(b"{}", BundleFormat::Spiffe, "td").unwrap_err().to_string();
        assert!(err.starts_with("unable to parse to spiffe bundle"), "{err}");
        let b = parse(CERT1_JWKS.as_bytes(), BundleFormat::Spiffe, "spiffe://domain1.test").unwrap();
        assert_eq!((b.trust_domain.as_str(), b.sequence_number, b.refresh_hint), ("domain1.test", 42, 60));
    }
}
