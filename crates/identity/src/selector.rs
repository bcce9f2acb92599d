//! Selectors (`type:value`), selector sets and the ways they are matched.
//!
//! Registration entries name the selectors a workload or node must show. The same set operations
//! serve the entry filters of ListEntries/CountEntries (match modes) and the agent's rule for handing
//! out identities (every selector of the entry must be among the workload's).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a selector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectorError {
    /// No colon between type and value.
    #[error("selector {0:?} must be formatted as type:value")]
    MissingColon(String),
    /// The type part is empty.
    #[error("selector {0:?} has an empty type: it must be formatted as type:value")]
    EmptyType(String),
    /// The value part is empty.
    #[error("selector {0:?} has an empty value: it must be formatted as type:value")]
    EmptyValue(String),
}

/// One selector: the attestor that vouches for it (`type`) and what it saw (`value`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Selector {
    /// The attestor plugin name, e.g. `unix`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The attested value, e.g. `uid:1000`; may itself contain colons.
    pub value: String,
}

impl Selector {
    /// A selector from its parts; both must be non-empty and the type must not contain a colon.
    pub fn new(kind: impl Into<String>, value: impl Into<String>) -> Result<Self, SelectorError> {
        let (kind, value) = (kind.into(), value.into());
        let text = || format!("{kind}:{value}");
        if kind.is_empty() || kind.contains(':') {
            return Err(SelectorError::EmptyType(text()));
        }
        if value.is_empty() {
            return Err(SelectorError::EmptyValue(text()));
        }
        Ok(Self { kind, value })
    }

    /// Parses `type:value`, splitting at the first colon (`unix:uid:1000` is type `unix`).
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let (kind, value) = input.split_once(':').ok_or_else(|| SelectorError::MissingColon(input.to_owned()))?;
        if kind.is_empty() {
            return Err(SelectorError::EmptyType(input.to_owned()));
        }
        if value.is_empty() {
            return Err(SelectorError::EmptyValue(input.to_owned()));
        }
        Ok(Self { kind: kind.to_owned(), value: value.to_owned() })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.value)
    }
}

impl FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// How a filter's selectors are compared with an entry's (SPIRE's `SelectorMatch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchMode {
    /// The entry has exactly the filter's selectors.
    Exact,
    /// The entry's selectors are all among the filter's.
    Subset,
    /// The entry has at least all of the filter's selectors (SPIRE's CLI default).
    #[default]
    Superset,
    /// The entry shares at least one selector with the filter.
    Any,
}

/// Why a match mode name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("match behavior {0:?} is not valid: it must be one of exact, subset, superset or any")]
pub struct MatchModeError(pub String);

impl FromStr for MatchMode {
    type Err = MatchModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "exact" => Ok(Self::Exact),
            "subset" => Ok(Self::Subset),
            "superset" => Ok(Self::Superset),
            "any" => Ok(Self::Any),
            other => Err(MatchModeError(other.to_owned())),
        }
    }
}

impl fmt::Display for MatchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Exact => "exact",
            Self::Subset => "subset",
            Self::Superset => "superset",
            Self::Any => "any",
        })
    }
}

/// A set of selectors: sorted, without duplicates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SelectorSet(BTreeSet<Selector>);

impl SelectorSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a selector; returns whether it was new.
    pub fn insert(&mut self, selector: Selector) -> bool {
        self.0.insert(selector)
    }

    /// Whether `selector` is in the set.
    pub fn contains(&self, selector: &Selector) -> bool {
        self.0.contains(selector)
    }

    /// Number of distinct selectors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The selectors in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = &Selector> {
        self.0.iter()
    }

    /// Whether every selector of `self` is in `other`.
    pub fn is_subset_of(&self, other: &SelectorSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// Whether an entry with these selectors passes a filter of `filter` under `mode`.
    pub fn matches(&self, filter: &SelectorSet, mode: MatchMode) -> bool {
        match mode {
            MatchMode::Exact => self == filter,
            MatchMode::Subset => self.is_subset_of(filter),
            MatchMode::Superset => filter.is_subset_of(self),
            MatchMode::Any => self.0.intersection(&filter.0).next().is_some(),
        }
    }

    /// The agent's rule: a workload showing `workload` selectors gets the identity of an entry with
    /// these selectors when all of them are among the workload's. An entry with no selectors matches
    /// nothing, so a malformed entry can never hand out an identity to everyone.
    pub fn entitles(&self, workload: &SelectorSet) -> bool {
        !self.is_empty() && self.is_subset_of(workload)
    }
}

impl FromIterator<Selector> for SelectorSet {
    fn from_iter<I: IntoIterator<Item = Selector>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl IntoIterator for SelectorSet {
    type Item = Selector;
    type IntoIter = std::collections::btree_set::IntoIter<Selector>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a SelectorSet {
    type Item = &'a Selector;
    type IntoIter = std::collections::btree_set::Iter<'a, Selector>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> SelectorSet {
        items.iter().map(|s| Selector::parse(s).unwrap()).collect()
    }

    #[test]
    fn splits_at_first_colon() {
        let s = Selector::parse("unix:uid:1001").unwrap();
        assert_eq!((s.kind.as_str(), s.value.as_str()), ("unix", "uid:1001"));
        assert_eq!(s.to_string(), "unix:uid:1001");
        let s = Selector::parse("k8s:pod-label:app:web").unwrap();
        assert_eq!(s.value, "pod-label:app:web");
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(Selector::parse("unix").unwrap_err(), SelectorError::MissingColon("unix".into()));
        assert_eq!(Selector::parse(":x").unwrap_err(), SelectorError::EmptyType(":x".into()));
        assert_eq!(Selector::parse("unix:").unwrap_err(), SelectorError::EmptyValue("unix:".into()));
        assert!(Selector::new("a:b", "c").is_err());
        assert!(Selector::new("a", "").is_err());
        assert!(Selector::parse("unix").unwrap_err().to_string().contains("type:value"));
    }

    #[test]
    fn match_modes() {
        let entry = set(&["unix:uid:1", "unix:gid:2"]);
        let cases = [
            (&["unix:uid:1", "unix:gid:2"][..], [true, true, true, true]),
            (&["unix:uid:1"][..], [false, false, true, true]),
            (&["unix:uid:1", "unix:gid:2", "unix:user:x"][..], [false, true, false, true]),
            (&["unix:uid:9"][..], [false, false, false, false]),
            (&["unix:uid:1", "unix:uid:9"][..], [false, false, false, true]),
        ];
        let modes = [MatchMode::Exact, MatchMode::Subset, MatchMode::Superset, MatchMode::Any];
        for (filter, expected) in cases {
            for (mode, want) in modes.iter().zip(expected) {
                assert_eq!(entry.matches(&set(filter), *mode), want, "{filter:?} {mode}");
            }
        }
    }

    #[test]
    fn agent_rule() {
        let workload = set(&["unix:uid:1000", "unix:gid:1000", "unix:user:alice"]);
        assert!(set(&["unix:uid:1000"]).entitles(&workload));
        assert!(set(&["unix:uid:1000", "unix:gid:1000"]).entitles(&workload));
        assert!(!set(&["unix:uid:1000", "unix:gid:0"]).entitles(&workload));
        assert!(!set(&["unix:uid:1001"]).entitles(&workload));
        assert!(!SelectorSet::new().entitles(&workload));
    }

    #[test]
    fn match_mode_names() {
        for m in ["exact", "subset", "superset", "any"] {
            assert_eq!(m.parse::<MatchMode>().unwrap().to_string(), m);
        }
        assert!("all".parse::<MatchMode>().unwrap_err().to_string().contains("exact, subset"));
        assert_eq!(MatchMode::default(), MatchMode::Superset);
    }
}
