//! The filter flags `agent list` and `agent count` share.

use spire_proto::spire::api::server::agent::v1::{count_agents_request, list_agents_request};
use spire_proto::spire::api::types::SelectorMatch;

use crate::error::CliError;
use crate::flags::{FlagSet, Parsed, go_quote};
use crate::server::common::{MATCH_SELECTORS_USAGE, SELECTOR_USAGE, parse_match, parse_selector};

/// The layout `-expiresBefore` takes (Go reference time).
const EXPIRES_BEFORE_LAYOUT: &str = "2006-01-02 15:04:05 -0700 -07";

pub(crate) fn declare(fs: &mut FlagSet) {
    fs.strings("selector", SELECTOR_USAGE)
        .string("matchSelectorsOn", "superset", MATCH_SELECTORS_USAGE)
        .string("attestationType", "", "Filter by attestation type, like join_token or x509pop.")
        .string(
            "canReattest",
            "",
            "Filter based on string received, 'true': agents that can reattest, 'false': agents that can't reattest, other value will return all.",
        )
        .string(
            "banned",
            "",
            "Filter based on string received, 'true': banned agents, 'false': not banned agents, other value will return all.",
        )
        .string("expiresBefore", "", format!("Filter by expiration time (format: {})", go_quote(EXPIRES_BEFORE_LAYOUT)));
}

/// The filter both ListAgents and CountAgents take.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct AgentFilter {
    by_attestation_type: String,
    by_selector_match: Option<SelectorMatch>,
    by_banned: Option<bool>,
    by_can_reattest: Option<bool>,
    by_expires_before: String,
}

/// `true`/`false` filter; any other text means no filter.
fn tri_state(text: &str) -> Option<bool> {
    match text {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Whether `text` has the shape of `2006-01-02 15:04:05 -0700 -07`.
fn valid_expiry(text: &str) -> bool {
    let b = text.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let sign = |i: usize| at(i, b'+') || at(i, b'-');
    b.len() == 29
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 21, 22, 23, 24, 27, 28].into_iter().all(digit)
        && at(4, b'-')
        && at(7, b'-')
        && at(10, b' ')
        && at(13, b':')
        && at(16, b':')
        && at(19, b' ')
        && sign(20)
        && at(25, b' ')
        && sign(26)
}

impl AgentFilter {
    pub(crate) fn from_flags(f: &Parsed) -> Result<Self, CliError> {
        let mut filter = Self { by_attestation_type: f.string("attestationType"), ..Self::default() };
        let selectors = f.strings("selector");
        if !selectors.is_empty() {
            let mode = parse_match(&f.string("matchSelectorsOn"))
                .ok_or_else(|| CliError::msg("unsupported match behavior"))?;
            let selectors = selectors
                .iter()
                .map(|s| parse_selector(s).map_err(|e| e.context(&format!("error parsing selector {}", go_quote(s)))))
                .collect::<Result<Vec<_>, _>>()?;
            filter.by_selector_match = Some(SelectorMatch { selectors, r#match: mode });
        }
        filter.by_banned = tri_state(&f.string("banned"));
        filter.by_can_reattest = tri_state(&f.string("canReattest"));
        let expires_before = f.string("expiresBefore");
        if !expires_before.is_empty() {
            if !valid_expiry(&expires_before) {
                return Err(CliError::msg(format!(
                    "date is not valid: parsing time {} as {}",
                    go_quote(&expires_before),
                    go_quote(EXPIRES_BEFORE_LAYOUT)
                )));
            }
            filter.by_expires_before = expires_before;
        }
        Ok(filter)
    }

    pub(crate) fn list(&self) -> list_agents_request::Filter {
        let s = self.clone();
        list_agents_request::Filter {
            by_attestation_type: s.by_attestation_type,
            by_selector_match: s.by_selector_match,
            by_banned: s.by_banned,
            by_can_reattest: s.by_can_reattest,
            by_expires_before: s.by_expires_before,
        }
    }

    pub(crate) fn count(&self) -> count_agents_request::Filter {
        let s = self.clone();
        count_agents_request::Filter {
            by_attestation_type: s.by_attestation_type,
            by_selector_match: s.by_selector_match,
            by_banned: s.by_banned,
            by_can_reattest: s.by_can_reattest,
            by_expires_before: s.by_expires_before,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_layout() {
        assert!(valid_expiry("2024-01-02 15:04:05 -0700 -07"));
        assert!(valid_expiry("2024-01-02 15:04:05 +0000 +00"));
        assert!(!valid_expiry("2024-01-02"));
        assert!(!valid_expiry("2024-01-02T15:04:05 -0700 -07"));
    }
}
