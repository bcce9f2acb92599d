//! The relationship flags of `federation create|update`, and the `-data` file
//! (`{"federationRelationships":[...]}`) they can be replaced by.

use serde::Deserialize;
use spire_identity::SpiffeId;
use spire_proto::spire::api::types::federation_relationship::BundleEndpointProfile;
use spire_proto::spire::api::types::{Bundle, FederationRelationship, HttpsWebProfile, HttpsspiffeProfile};

use crate::error::CliError;
use crate::flags::{FlagSet, Parsed, go_quote};
use crate::goerror::errno_text;
use crate::server::bundle::{self, format};

const PROFILE_HTTPS_WEB: &str = "https_web";
const PROFILE_HTTPS_SPIFFE: &str = "https_spiffe";

pub(crate) fn declare(fs: &mut FlagSet) {
    fs.string(
        "data",
        "",
        "Path to a file containing federation relationships in JSON format (optional). If set to '-', read the JSON from stdin.",
    )
    .string("trustDomain", "", "Name of the trust domain to federate with (e.g., example.org)")
    .string(
        "bundleEndpointURL",
        "",
        "URL of the SPIFFE bundle endpoint that provides the trust bundle (must use the HTTPS protocol)",
    )
    .string(
        "bundleEndpointProfile",
        "",
        format!("Endpoint profile type (either {} or {})", go_quote(PROFILE_HTTPS_WEB), go_quote(PROFILE_HTTPS_SPIFFE)),
    )
    .string(
        "endpointSpiffeID",
        "",
        "SPIFFE ID of the SPIFFE bundle endpoint server. Only used for 'spiffe' profile.",
    )
    .string("trustDomainBundlePath", "", "Path to the trust domain bundle data (optional).")
    .string(
        "trustDomainBundleFormat",
        "pem",
        "The format of the bundle data (optional). Either \"pem\" or \"spiffe\".",
    );
}

/// One relationship as flags or a JSON item describe it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RelationshipConfig {
    #[serde(default)]
    trust_domain: String,
    #[serde(default, rename = "bundleEndpointURL")]
    bundle_endpoint_url: String,
    #[serde(default)]
    bundle_endpoint_profile: String,
    #[serde(default, rename = "endpointSPIFFEID")]
    endpoint_spiffe_id: String,
    #[serde(default)]
    trust_domain_bundle: Option<serde_json::Value>,
    #[serde(default)]
    trust_domain_bundle_format: String,
    #[serde(skip)]
    trust_domain_bundle_path: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RelationshipsFile {
    #[serde(default)]
    federation_relationships: Vec<RelationshipConfig>,
}

/// The relationships to send: from `-data`, or one from the other flags (which may not be combined).
pub(crate) fn relationships(
    f: &Parsed,
    read_input: &mut dyn FnMut(&str) -> Result<Vec<u8>, CliError>,
) -> Result<Vec<FederationRelationship>, CliError> {
    let config = RelationshipConfig {
        trust_domain: f.string("trustDomain"),
        bundle_endpoint_url: f.string("bundleEndpointURL"),
        bundle_endpoint_profile: f.string("bundleEndpointProfile"),
        endpoint_spiffe_id: f.string("endpointSpiffeID"),
        trust_domain_bundle: None,
        trust_domain_bundle_format: f.string("trustDomainBundleFormat"),
        trust_domain_bundle_path: f.string("trustDomainBundlePath"),
    };
    let path = f.string("data");
    if path.is_empty() {
        return Ok(vec![to_proto(&config)?]);
    }
    let empty = config.bundle_endpoint_profile.is_empty()
        && config.bundle_endpoint_url.is_empty()
        && config.trust_domain_bundle_format == "pem"
        && config.trust_domain_bundle_path.is_empty()
        && config.endpoint_spiffe_id.is_empty()
        && config.trust_domain.is_empty();
    if !empty {
        return Err(CliError::msg("cannot use other flags to specify relationship fields when 'data' flag is set"));
    }
    let data = read_input(&path)?;
    let file: RelationshipsFile =
        serde_json::from_slice(&data).map_err(|e| CliError::msg(format!("failed to parse JSON: {e}")))?;
    file.federation_relationships
        .iter()
        .enumerate()
        .map(|(i, c)| to_proto(c).map_err(|e| e.context(&format!("could not parse item {i}"))))
        .collect()
}

fn to_proto(c: &RelationshipConfig) -> Result<FederationRelationship, CliError> {
    if c.trust_domain.is_empty() {
        return Err(CliError::msg("trust domain is required"));
    }
    if c.bundle_endpoint_url.is_empty() {
        return Err(CliError::msg("bundle endpoint URL is required"));
    }
    let mut bundle_trust_domain = c.trust_domain.clone();
    let profile = match c.bundle_endpoint_profile.as_str() {
        PROFILE_HTTPS_WEB => BundleEndpointProfile::HttpsWeb(HttpsWebProfile {}),
        PROFILE_HTTPS_SPIFFE => {
            if c.endpoint_spiffe_id.is_empty() {
                return Err(CliError::msg("endpoint SPIFFE ID is required if 'https_spiffe' endpoint profile is set"));
            }
            let id = SpiffeId::parse(&c.endpoint_spiffe_id).map_err(|e| {
                CliError::msg(format!("cannot parse bundle endpoint SPIFFE ID: {}", e.go_spiffe_message()))
            })?;
            bundle_trust_domain = id.trust_domain().as_str().to_owned();
            BundleEndpointProfile::HttpsSpiffe(HttpsspiffeProfile { endpoint_spiffe_id: c.endpoint_spiffe_id.clone() })
        }
        other => return Err(CliError::msg(format!("unknown bundle endpoint profile type: {}", go_quote(other)))),
    };
    let format_text = if c.trust_domain_bundle_format.is_empty() { "pem" } else { &c.trust_domain_bundle_format };
    let trust_domain_bundle = if !c.trust_domain_bundle_path.is_empty() {
        let data = std::fs::read(&c.trust_domain_bundle_path).map_err(|e| {
            CliError::msg(format!("cannot read bundle file: open {}: {}", c.trust_domain_bundle_path, errno_text(&e)))
        })?;
        let fmt = bundle::parse_format(format_text)?;
        Some(format::parse(&data, fmt, &bundle_trust_domain).map_err(|e| e.context("cannot parse bundle file"))?)
    } else if let Some(raw) = &c.trust_domain_bundle {
        Some(
            bundle_from_json(raw, format_text, &bundle_trust_domain)
                .map_err(|e| e.context("cannot parse bundle raw message"))?,
        )
    } else {
        None
    };
    Ok(FederationRelationship {
        trust_domain: c.trust_domain.clone(),
        bundle_endpoint_url: c.bundle_endpoint_url.clone(),
        bundle_endpoint_profile: Some(profile),
        trust_domain_bundle,
    })
}

/// A bundle embedded in the JSON file: a PEM string, or the SPIFFE document itself.
fn bundle_from_json(raw: &serde_json::Value, format_text: &str, td: &str) -> Result<Bundle, CliError> {
    match format_text {
        "pem" => {
            let serde_json::Value::String(pem) = raw else {
                return Err(CliError::msg(
                    "failed to unmarshal json: json: cannot unmarshal into Go value of type string",
                ));
            };
            format::parse(pem.as_bytes(), bundle::BundleFormat::Pem, td)
        }
        "spiffe" => format::parse(raw.to_string().as_bytes(), bundle::BundleFormat::Spiffe, td),
        other => Err(CliError::msg(format!("bundle format {} is unsupported", go_quote(other)))),
    }
}
