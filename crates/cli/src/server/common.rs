//! Conversions and small helpers shared by the commands (SPIRE's `cmd/spire-server/util`).

use spire_identity::selector::SelectorError;
use spire_identity::{Selector, SpiffeId};
use spire_proto::spire::api::types;

use crate::error::CliError;

/// Parses a `type:value` selector, split at the first colon; SPIRE's wording when there is none.
pub(crate) fn parse_selector(text: &str) -> Result<types::Selector, CliError> {
    match Selector::parse(text) {
        Ok(s) => Ok(types::Selector { r#type: s.kind, value: s.value }),
        Err(SelectorError::MissingColon(_)) => {
            Err(CliError::msg(format!("selector {} must be formatted as type:value", crate::flags::go_quote(text))))
        }
        Err(other) => Err(CliError::msg(other.to_string())),
    }
}

/// Parses a SPIFFE ID into its API form.
pub(crate) fn id_to_proto(text: &str) -> Result<types::Spiffeid, CliError> {
    let id = SpiffeId::parse(text).map_err(|e| CliError::msg(e.go_spiffe_message()))?;
    Ok(types::Spiffeid { trust_domain: id.trust_domain().as_str().to_owned(), path: id.path().to_owned() })
}

/// `spiffe://<td><path>`, or the empty string for a missing ID (SPIRE's `protoToIDString`).
pub(crate) fn id_string(id: Option<&types::Spiffeid>) -> String {
    id.map(|id| format!("spiffe://{}{}", id.trust_domain, id.path)).unwrap_or_default()
}

/// SPIRE's `Pluralizer`: `msg` followed by the singular when `n` is one, else the plural.
pub(crate) fn pluralize(msg: &str, singular: &str, plural: &str, n: usize) -> String {
    format!("{msg}{}", if n == 1 { singular } else { plural })
}

/// A `-matchSelectorsOn` / `-matchFederatesWithOn` value as the API's enum number (the selector and
/// federates-with enums share their numbering).
pub(crate) fn parse_match(text: &str) -> Option<i32> {
    use types::selector_match::MatchBehavior as M;
    Some(match text {
        "exact" => M::MatchExact,
        "any" => M::MatchAny,
        "superset" => M::MatchSuperset,
        "subset" => M::MatchSubset,
        _ => return None,
    } as i32)
}

/// The usage text of `-matchSelectorsOn`.
pub(crate) const MATCH_SELECTORS_USAGE: &str =
    "The match mode used when filtering by selectors. Options: exact, any, superset and subset";

/// The usage text of `-selector`.
pub(crate) const SELECTOR_USAGE: &str = "A colon-delimited type:value selector. Can be used more than once";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_split_at_the_first_colon() {
        let s = parse_selector("unix:uid:1000").unwrap();
        assert_eq!((s.r#type.as_str(), s.value.as_str()), ("unix", "uid:1000"));
        assert_eq!(parse_selector("x").unwrap_err().to_string(), "selector \"x\" must be formatted as type:value");
    }

    #[test]
    fn ids() {
        let id = id_to_proto("spiffe://example.org/workload").unwrap();
        assert_eq!((id.trust_domain.as_str(), id.path.as_str()), ("example.org", "/workload"));
        assert_eq!(id_string(Some(&id)), "spiffe://example.org/workload");
        assert_eq!(id_string(None), "");
        assert!(id_to_proto("invalid id").unwrap_err().to_string().starts_with("scheme is missing or invalid"));
    }

    #[test]
    fn plurals() {
        assert_eq!(pluralize("Found 1 ", "entry", "entries", 1), "Found 1 entry");
        assert_eq!(pluralize("Found 0 ", "entry", "entries", 0), "Found 0 entries");
    }
}
