//! The flags `entry create` and `entry update` share, and the entry they describe.

use spire_proto::spire::api::types::{AdditionalAttributes, Entry, Spiffeid};

use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::server::common::{SELECTOR_USAGE, id_to_proto, parse_selector};

/// Path of the server's own SPIFFE ID, the parent of node entries.
const SERVER_ID_PATH: &str = "/spire/server";

/// Declares the flags both commands take (`-entryID` differs and is declared by each).
pub(crate) fn declare(fs: &mut FlagSet) {
    fs.string("parentID", "", "The SPIFFE ID of this record's parent")
        .string("spiffeID", "", "The SPIFFE ID that this record represents")
        .int("x509SVIDTTL", 0, "The lifetime, in seconds, for x509-SVIDs issued based on this registration entry.")
        .int("jwtSVIDTTL", 0, "The lifetime, in seconds, for JWT-SVIDs issued based on this registration entry.")
        .string(
            "data",
            "",
            "Path to a file containing registration JSON (optional). If set to '-', read the JSON from stdin.",
        )
        .strings("selector", SELECTOR_USAGE)
        .strings("federatesWith", "SPIFFE ID of a trust domain to federate with. Can be used more than once")
        .bool(
            "admin",
            false,
            "If set, the SPIFFE ID in this entry will be granted access to the SPIRE Server's management APIs",
        )
        .bool(
            "storeSVID",
            false,
            "A boolean value that, when set, indicates that the resulting issued SVID from this entry must be stored through an SVIDStore plugin",
        )
        .bool(
            "downstream",
            false,
            "A boolean value that, when set, indicates that the entry describes a downstream SPIRE server",
        )
        .int("entryExpiry", 0, "An expiry, from epoch in seconds, for the resulting registration entry to be pruned")
        .strings(
            "dns",
            "A DNS name that will be included in SVIDs issued based on this entry, where appropriate. Can be used more than once",
        )
        .string("hint", "", "The entry hint, used to disambiguate entries with the same SPIFFE ID")
        .bool(
            "disableX509SVIDPrefetch",
            false,
            "A boolean value that, when set, indicates that the agent should not prefetch and cache X509-SVIDs for this entry",
        )
        .bool("jwtSVIDIncludeJTI", false, "A boolean value that, when set, indicates that JWT-SVIDs issued for this entry include a unique jti claim");
}

/// The entry's additional attributes from `-disableX509SVIDPrefetch` and `-jwtSVIDIncludeJTI`, applied
/// over `base` (the stored entry's, for `entry update`); `None` when neither flag was given.
pub(crate) fn additional_attributes(
    flags: &Parsed,
    base: Option<AdditionalAttributes>,
) -> Option<AdditionalAttributes> {
    let prefetch = flags.opt_bool("disableX509SVIDPrefetch");
    let jti = flags.opt_bool("jwtSVIDIncludeJTI");
    if prefetch.is_none() && jti.is_none() {
        return base;
    }
    let mut attrs = base.unwrap_or_default();
    if let Some(v) = prefetch {
        attrs.disable_x509_svid_prefetch = v;
    }
    if let Some(v) = jti {
        attrs.jwt_svid_include_jti = v;
    }
    Some(attrs)
}

/// Whether either additional-attribute flag was given.
pub(crate) fn sets_additional_attributes(flags: &Parsed) -> bool {
    flags.is_set("disableX509SVIDPrefetch") || flags.is_set("jwtSVIDIncludeJTI")
}

/// An `int` TTL flag as the API's `int32` (Go's `int32(c.x509SVIDTTL)` conversion wraps the same way).
fn ttl(flags: &Parsed, name: &str) -> i32 {
    flags.int(name) as i32
}

/// The entry the flags describe. `node` entries hang off the server's own ID in the SPIFFE ID's trust
/// domain instead of `-parentID`.
pub(crate) fn entry_from_flags(flags: &Parsed, id_flag_value: String, node: bool) -> Result<Entry, CliError> {
    let spiffe_id = id_to_proto(&flags.string("spiffeID"))?;
    let parent_id = if node {
        Spiffeid { trust_domain: spiffe_id.trust_domain.clone(), path: SERVER_ID_PATH.to_owned() }
    } else {
        id_to_proto(&flags.string("parentID"))?
    };
    let selectors = flags.strings("selector").iter().map(|s| parse_selector(s)).collect::<Result<Vec<_>, _>>()?;
    Ok(Entry {
        id: id_flag_value,
        spiffe_id: Some(spiffe_id),
        parent_id: Some(parent_id),
        selectors,
        x509_svid_ttl: ttl(flags, "x509SVIDTTL"),
        federates_with: flags.strings("federatesWith"),
        admin: flags.bool("admin"),
        downstream: flags.bool("downstream"),
        expires_at: flags.int("entryExpiry"),
        dns_names: flags.strings("dns"),
        revision_number: 0,
        store_svid: flags.bool("storeSVID"),
        jwt_svid_ttl: ttl(flags, "jwtSVIDTTL"),
        hint: flags.string("hint"),
        created_at: 0,
        additional_attributes: additional_attributes(flags, None),
    })
}

/// Checks shared by both commands after their own: at least one selector, an ID, non-negative TTLs.
pub(crate) fn validate_common(flags: &Parsed) -> Result<(), CliError> {
    if flags.string("spiffeID").is_empty() {
        return Err(CliError::msg("a SPIFFE ID is required"));
    }
    if flags.int("x509SVIDTTL") < 0 {
        return Err(CliError::msg("a positive x509-SVID TTL is required"));
    }
    if flags.int("jwtSVIDTTL") < 0 {
        return Err(CliError::msg("a positive JWT-SVID TTL is required"));
    }
    Ok(())
}
