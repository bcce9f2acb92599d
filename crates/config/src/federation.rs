//! The server's `federation` block: its own bundle endpoint and the trust domains it federates
//! with. Parsed and validated as SPIRE does; the server serves `bundle_endpoint` and fetches the
//! `federates_with` trust domains' bundles (`spire_server::federation`).
//!
//! SPIRE does not check for unknown keys in `federation` itself or in `federates_with` entries, so
//! those only warn here; `bundle_endpoint` and `acme` are checked.

use std::time::Duration;

use spire_identity::{SpiffeId, TrustDomain};

use crate::decode::{Reader, UnknownKeys};
use crate::error::ConfigError;
use crate::value::Value;

/// `federation { bundle_endpoint {...} federates_with "td" {...} }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FederationConfig {
    /// Serve this server's bundle to other trust domains.
    pub bundle_endpoint: Option<BundleEndpoint>,
    /// The trust domains whose bundles this server fetches, in file order.
    pub federates_with: Vec<FederatesWith>,
}

/// `bundle_endpoint { address, port, refresh_hint, profile "..." {...} }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleEndpoint {
    /// Listen address (default `0.0.0.0`).
    pub address: String,
    /// Listen port (default 443).
    pub port: u16,
    /// The refresh hint published in the bundle (default 5m).
    pub refresh_hint: Duration,
    /// How the endpoint authenticates itself; `None` means SPIRE's default, `https_spiffe`.
    pub profile: Option<BundleEndpointProfile>,
}

/// How the bundle endpoint proves its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleEndpointProfile {
    /// `https_spiffe`: with the server's own SVID.
    HttpsSpiffe,
    /// `https_web` with a certificate from an ACME CA.
    HttpsWebAcme(Acme),
    /// `https_web` with a certificate and key read from disk.
    HttpsWebServingCert(ServingCertFile),
}

/// `acme { directory_url, domain_name, email, tos_accepted }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acme {
    /// ACME directory (SPIRE's default is Let's Encrypt).
    pub directory_url: Option<String>,
    /// Domain name of the endpoint.
    pub domain_name: String,
    /// Contact e-mail.
    pub email: String,
    /// Whether the CA's terms of service are accepted.
    pub tos_accepted: bool,
}

/// `serving_cert_file { cert_file_path, key_file_path, file_sync_interval }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingCertFile {
    /// Certificate chain file.
    pub cert_file_path: String,
    /// Key file.
    pub key_file_path: String,
    /// How often the files are reread (default 1h).
    pub file_sync_interval: Duration,
}

/// `federates_with "<trust domain>" { bundle_endpoint_url, bundle_endpoint_profile "..." {...} }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatesWith {
    /// The foreign trust domain.
    pub trust_domain: TrustDomain,
    /// Its bundle endpoint (https).
    pub bundle_endpoint_url: String,
    /// How to authenticate that endpoint.
    pub profile: FederatesWithProfile,
}

/// How a foreign bundle endpoint is authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FederatesWithProfile {
    /// `https_web`: Web PKI.
    HttpsWeb,
    /// `https_spiffe { endpoint_spiffe_id }`: the endpoint's SPIFFE ID, checked against the bundle.
    HttpsSpiffe {
        /// The SPIFFE ID the endpoint must present.
        endpoint_spiffe_id: SpiffeId,
    },
}

impl FederationConfig {
    pub(crate) fn read(r: Reader<'_, '_>) -> Self {
        let mut r = r.unknown_keys(UnknownKeys::Warn);
        let bundle_endpoint = r.object("bundle_endpoint").and_then(read_bundle_endpoint);
        let mut federates_with = Vec::new();
        if let Some(mut fw) = r.object("federates_with") {
            for entry in fw.take_entries() {
                let path = format!("{}[{:?}]", fw.path(), entry.key);
                if let Some(reader) = Reader::new(path, &entry.value, fw.diags())
                    && let Some(f) = read_federates_with(&entry.key, entry.key_pos.line, reader)
                {
                    federates_with.push(f);
                }
            }
            fw.finish();
        }
        r.finish();
        Self { bundle_endpoint, federates_with }
    }
}

fn read_bundle_endpoint(mut r: Reader<'_, '_>) -> Option<BundleEndpoint> {
    let line = r.pos().line;
    let address = r.non_empty_string("address").unwrap_or_else(|| "0.0.0.0".to_owned());
    let port = r.int::<u16>("port").filter(|&p| p != 0).unwrap_or(443);
    let refresh_hint = r.duration("refresh_hint").unwrap_or(Duration::from_secs(300));
    if refresh_hint >= Duration::from_secs(24 * 3600) {
        r.diags().warn(
            "Bundle endpoint refresh hint set to a high value. To cover the case of unscheduled trust bundle \
             updates, it's recommended to have a smaller value, e.g. 5m",
        );
    }
    if refresh_hint < Duration::from_secs(60) {
        r.diags().warn("Bundle endpoint refresh hint set too low. SPIRE will not refresh more often than 1 minute");
    }
    let acme = r.object("acme").map(read_acme);
    let profile_value = r.take("profile");
    let profile = match (acme, profile_value) {
        (Some(_), Some(_)) => {
            let message = "either bundle endpoint 'acme' or 'profile' can be set, but not both";
            r.diags().error(ConfigError::invalid(message, line));
            None
        }
        (Some(acme), None) => {
            r.diags().warn(
                "ACME configuration within the bundle_endpoint is deprecated. Please use ACME configuration as part \
                 of the https_web profile instead.",
            );
            acme.map(BundleEndpointProfile::HttpsWebAcme)
        }
        (None, None) => {
            r.diags().warn(
                "Bundle endpoint is configured but has no profile set, using https_spiffe as default; please \
                 configure a profile explicitly. This will be fatal in a future release.",
            );
            None
        }
        (None, Some(value)) => read_endpoint_profile(&r.key_path("profile"), value, &mut r),
    };
    r.finish();
    Some(BundleEndpoint { address, port, refresh_hint, profile })
}

/// The single `"name" { ... }` of a profile block.
fn single_profile<'a>(path: &str, value: &'a Value, r: &mut Reader<'_, '_>) -> Option<(&'a str, &'a Value)> {
    match value.as_object() {
        Some([entry]) => Some((entry.key.as_str(), &entry.value)),
        Some(_) => {
            r.diags().error(ConfigError::invalid(
                format!("{path}: exactly one bundle endpoint profile is expected"),
                value.pos.line,
            ));
            None
        }
        None => {
            r.diags().error(crate::decode::wrong_type(path, value, "a block"));
            None
        }
    }
}

fn read_endpoint_profile(path: &str, value: &Value, r: &mut Reader<'_, '_>) -> Option<BundleEndpointProfile> {
    let (name, body) = single_profile(path, value, r)?;
    let mut p = Reader::new(format!("{path}.{name}"), body, r.diags())?.unknown_keys(UnknownKeys::Warn);
    let profile = match name {
        "https_spiffe" => Some(BundleEndpointProfile::HttpsSpiffe),
        "https_web" => {
            let acme = p.object("acme").map(read_acme);
            let cert = p.object("serving_cert_file").map(read_serving_cert);
            match (acme, cert) {
                (Some(acme), _) => acme.map(BundleEndpointProfile::HttpsWebAcme),
                (None, Some(cert)) => cert.map(BundleEndpointProfile::HttpsWebServingCert),
                (None, None) => {
                    let message =
                        "malformed https_web profile configuration: 'acme' or 'serving_cert_file' is required";
                    p.diags().error(ConfigError::invalid(message, body.pos.line));
                    None
                }
            }
        }
        other => {
            let message = format!(
                "unknown bundle endpoint profile {other:?}; current supported profiles are \"https_spiffe\" and \"https_web\""
            );
            p.diags().error(ConfigError::invalid(message, value.pos.line));
            None
        }
    };
    p.finish();
    profile
}

fn read_acme(mut r: Reader<'_, '_>) -> Option<Acme> {
    let line = r.pos().line;
    let directory_url = r.non_empty_string("directory_url");
    let domain_name = r.non_empty_string("domain_name");
    let email = r.non_empty_string("email");
    let tos_accepted = r.bool("tos_accepted").unwrap_or(false);
    for (key, value) in [("domain_name", &domain_name), ("email", &email)] {
        if value.is_none() {
            let message = format!("{} must be configured", r.key_path(key));
            r.diags().error(ConfigError::invalid(message, line));
        }
    }
    r.finish();
    Some(Acme { directory_url, domain_name: domain_name?, email: email?, tos_accepted })
}

fn read_serving_cert(mut r: Reader<'_, '_>) -> Option<ServingCertFile> {
    let line = r.pos().line;
    let cert_file_path = r.non_empty_string("cert_file_path");
    let key_file_path = r.non_empty_string("key_file_path");
    let file_sync_interval =
        r.duration("file_sync_interval").filter(|d| !d.is_zero()).unwrap_or(Duration::from_secs(3600));
    for (key, value) in [("cert_file_path", &cert_file_path), ("key_file_path", &key_file_path)] {
        if value.is_none() {
            let message = format!("{} must be configured", r.key_path(key));
            r.diags().error(ConfigError::invalid(message, line));
        }
    }
    r.finish();
    Some(ServingCertFile { cert_file_path: cert_file_path?, key_file_path: key_file_path?, file_sync_interval })
}

fn read_federates_with(td: &str, line: usize, r: Reader<'_, '_>) -> Option<FederatesWith> {
    let mut r = r.unknown_keys(UnknownKeys::Warn);
    let trust_domain = match TrustDomain::parse(td) {
        Ok(t) => Some(t),
        Err(e) => {
            r.diags()
                .error(ConfigError::invalid(format!("could not parse federates_with trust domain {td:?}: {e}"), line));
            None
        }
    };
    let url = r.non_empty_string("bundle_endpoint_url");
    let path = r.path().to_owned();
    match &url {
        None => r.diags().error(ConfigError::invalid(format!("{path}.bundle_endpoint_url must be configured"), line)),
        Some(u) if !u.to_ascii_lowercase().starts_with("https://") => r.diags().error(ConfigError::invalid(
            format!("{path}.bundle_endpoint_url must use the HTTPS protocol; URL found: {u:?}"),
            line,
        )),
        Some(_) => {}
    }
    let profile = match r.take("bundle_endpoint_profile") {
        None => {
            let message =
                format!("federation configuration for trust domain {td:?}: missing bundle endpoint configuration");
            r.diags().error(ConfigError::invalid(message, line));
            None
        }
        Some(value) => read_federates_with_profile(&r.key_path("bundle_endpoint_profile"), value, &mut r),
    };
    r.finish();
    Some(FederatesWith { trust_domain: trust_domain?, bundle_endpoint_url: url?, profile: profile? })
}

fn read_federates_with_profile(path: &str, value: &Value, r: &mut Reader<'_, '_>) -> Option<FederatesWithProfile> {
    let (name, body) = single_profile(path, value, r)?;
    let mut p = Reader::new(format!("{path}.{name}"), body, r.diags())?;
    let profile = match name {
        "https_web" => Some(FederatesWithProfile::HttpsWeb),
        "https_spiffe" => {
            let raw = p.string("endpoint_spiffe_id").unwrap_or_default();
            match SpiffeId::parse(&raw) {
                Ok(endpoint_spiffe_id) => Some(FederatesWithProfile::HttpsSpiffe { endpoint_spiffe_id }),
                Err(e) => {
                    let message = format!("{path}: could not get endpoint SPIFFE ID {raw:?}: {e}");
                    p.diags().error(ConfigError::invalid(message, body.pos.line));
                    None
                }
            }
        }
        other => {
            let message = format!(
                "{path}: unknown bundle endpoint profile {other:?}; current supported profiles are \"https_spiffe\" and \"https_web\""
            );
            p.diags().error(ConfigError::invalid(message, value.pos.line));
            None
        }
    };
    p.finish();
    profile
}
