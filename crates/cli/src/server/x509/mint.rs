//! `x509 mint`: generates an EC P-256 key and a CSR naming the SPIFFE ID (URI SAN) and `-dns` names,
//! has the server sign it (`SVID/MintX509SVID`), fetches the trust bundle (`Bundle/GetBundle`) and prints
//! or writes the SVID, key and bundle.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};
use rustls_pki_types::PrivatePkcs8KeyDer;
use serde::Serialize;
use spire_identity::{KeyType, PrivateKey, SpiffeId};
use spire_proto::spire::api::server::bundle::v1::GetBundleRequest;
use spire_proto::spire::api::server::bundle::v1::bundle_client::BundleClient;
use spire_proto::spire::api::server::svid::v1::MintX509svidRequest;
use spire_proto::spire::api::server::svid::v1::svid_client::SvidClient;

use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::goerror::errno_text;
use crate::gotime::GoDuration;
use crate::output::JsonValue;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Mints an X509-SVID";

pub(crate) fn flags(fs: &mut FlagSet) {
    fs.string("spiffeID", "", "SPIFFE ID of the X509-SVID")
        .duration("ttl", GoDuration(0), "TTL of the X509-SVID")
        .strings("dns", "DNS name that will be included in SVID. Can be used more than once.")
        .string("write", "", "Directory to write output to instead of stdout");
}

/// What SPIRE prints for `-output json` (a Go struct: byte slices as base64).
#[derive(Debug, Serialize)]
struct MintResult {
    x509_svid: Vec<String>,
    private_key: String,
    root_cas: Vec<String>,
}

/// A CSR for `id` and `dns_names` with an empty subject, as Go's `x509.CreateCertificateRequest` makes it.
pub(crate) fn csr_for(key: &PrivateKey, id: &SpiffeId, dns_names: &[String]) -> Result<Vec<u8>, CliError> {
    let err = |e: rcgen::Error| CliError::msg(format!("unable to generate CSR: {e}"));
    let der = PrivatePkcs8KeyDer::from(key.pkcs8_der().to_vec());
    let pair = KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names.push(SanType::URI(id.to_string().try_into().map_err(err)?));
    for name in dns_names {
        params.subject_alt_names.push(SanType::DnsName(name.clone().try_into().map_err(err)?));
    }
    Ok(params.serialize_request(&pair).map_err(err)?.der().to_vec())
}

/// Seconds in `ttl`, rounded up (SPIRE's `ttlToSeconds`).
pub(crate) fn ttl_seconds(ttl: GoDuration) -> i32 {
    ((ttl.0 + 999_999_999) / 1_000_000_000) as i32
}

fn pem_blocks(tag: &str, ders: &[Vec<u8>]) -> String {
    ders.iter()
        .map(|der| {
            pem::encode_config(
                &pem::Pem::new(tag, der.clone()),
                pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
            )
        })
        .collect()
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let spiffe_id = f.string("spiffeID");
    if spiffe_id.is_empty() {
        return Err(CliError::msg("spiffeID must be specified"));
    }
    let id = SpiffeId::parse(&spiffe_id).map_err(|e| CliError::msg(e.go_spiffe_message()))?;
    let ttl = f.duration("ttl");
    let key =
        PrivateKey::generate(KeyType::EcP256).map_err(|e| CliError::msg(format!("unable to generate key: {e}")))?;
    let csr = csr_for(&key, &id, &f.strings("dns"))?;

    let channel = ctx.channel().await?;
    let svid = SvidClient::new(channel.clone())
        .mint_x509svid(MintX509svidRequest { csr, ttl: ttl_seconds(ttl) })
        .await
        .map_err(|s| CliError::from(s).context("unable to mint SVID"))?
        .into_inner()
        .svid
        .unwrap_or_default();
    if svid.cert_chain.is_empty() {
        return Err(CliError::msg("server response missing SVID chain"));
    }
    let bundle = BundleClient::new(channel)
        .get_bundle(GetBundleRequest { output_mask: None })
        .await
        .map_err(|s| CliError::from(s).context("unable to get bundle"))?
        .into_inner();
    if bundle.x509_authorities.is_empty() {
        return Err(CliError::msg("server response missing X509 Authorities"));
    }
    warn_if_capped(ctx, svid.expires_at, ttl, "X509-SVID")?;

    let root_cas: Vec<Vec<u8>> = bundle.x509_authorities.into_iter().map(|c| c.asn1).collect();
    let svid_pem = pem_blocks("CERTIFICATE", &svid.cert_chain);
    let key_pem = pem_blocks("PRIVATE KEY", &[key.pkcs8_der().to_vec()]);
    let bundle_pem = pem_blocks("CERTIFICATE", &root_cas);

    let write = f.string("write");
    if write.is_empty() {
        if ctx.json() {
            use base64::Engine;
            let b64 = |d: &Vec<u8>| base64::engine::general_purpose::STANDARD.encode(d);
            let result = MintResult {
                x509_svid: svid.cert_chain.iter().map(b64).collect(),
                private_key: b64(&key.pkcs8_der().to_vec()),
                root_cas: root_cas.iter().map(b64).collect(),
            };
            return ctx.print_json(&[JsonValue::of_struct(&[result])]);
        }
        return ctx.out(&format!("X509-SVID:\n{svid_pem}\nPrivate key:\n{key_pem}\nRoot CAs:\n{bundle_pem}\n"));
    }
    let dir = Path::new(&write);
    let svid_path = dir.join("svid.pem");
    let key_path = dir.join("key.pem");
    let bundle_path = dir.join("bundle.pem");
    write_file(&svid_path, &svid_pem, 0o644).map_err(|e| CliError::msg(format!("unable to write SVID: {e}")))?;
    ctx.out(&format!("X509-SVID written to {}\n", svid_path.display()))?;
    write_file(&key_path, &key_pem, 0o600).map_err(|e| CliError::msg(format!("unable to write key: {e}")))?;
    ctx.out(&format!("Private key written to {}\n", key_path.display()))?;
    write_file(&bundle_path, &bundle_pem, 0o644).map_err(|e| CliError::msg(format!("unable to write bundle: {e}")))?;
    ctx.out(&format!("Root CAs written to {}\n", bundle_path.display()))
}

/// Writes `text` with `mode` permissions, as Go's `os.WriteFile` would (error worded like Go's).
pub(crate) fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let open = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path);
    let mut file = open.map_err(|e| format!("open {}: {}", path.display(), errno_text(&e)))?;
    file.write_all(text.as_bytes()).map_err(|e| format!("write {}: {}", path.display(), errno_text(&e)))
}

/// Warns on stderr when the server issued a shorter lifetime than `-ttl` asked for.
pub(crate) fn warn_if_capped(ctx: &mut Ctx<'_>, expires_at: i64, ttl: GoDuration, what: &str) -> Result<(), CliError> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0);
    let remaining = i128::from(expires_at) * 1_000_000_000 - now;
    // SPIRE's test, `time.Until(eol) < ttl`, with no tolerance: since expiries are whole seconds
    // counted from the server's clock, SPIRE warns on nearly every mint with a `-ttl`, and so do we
    // (scripts see the same stderr).
    if remaining < i128::from(ttl.0) {
        let at = jiff::Timestamp::from_second(expires_at)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        ctx.err(&format!("{what} lifetime was capped shorter than specified ttl; expires \"{at}\"\n"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::FromDer;

    #[test]
    fn csr_carries_the_uri_and_dns_sans() {
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let id = SpiffeId::parse("spiffe://example.org/workload").unwrap();
        let der = csr_for(&key, &id, &["a.example.org".into(), "b.example.org".into()]).unwrap();
        let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der).unwrap();
        csr.verify_signature().unwrap();
        assert!(csr.certification_request_info.subject.iter().next().is_none(), "empty subject");
        let text = format!("{:?}", csr.requested_extensions().unwrap().collect::<Vec<_>>());
        assert!(text.contains("spiffe://example.org/workload"));
        assert!(text.contains("a.example.org") && text.contains("b.example.org"));
    }

    #[test]
    fn ttl_rounds_up() {
        assert_eq!(ttl_seconds(GoDuration(0)), 0);
        assert_eq!(ttl_seconds(GoDuration(1)), 1);
        assert_eq!(ttl_seconds(GoDuration::from_secs(3600)), 3600);
    }
}
