//! Checks every backend applies before writing, so that a bad record is refused with the same message
//! whatever database sits behind the store.

use spire_identity::Selector;

use crate::{DataStoreError, RegistrationEntry};

/// Longest entry ID SPIRE accepts.
pub(crate) const MAX_ENTRY_ID_LEN: usize = 255;

/// Entry IDs are used in URLs and log lines: at most 255 of `[A-Za-z0-9._-]`.
pub(crate) fn entry_id(id: &str) -> Result<(), DataStoreError> {
    if id.is_empty() {
        return Err(DataStoreError::invalid("entry ID is empty: give the ID of an existing entry"));
    }
    if id.len() > MAX_ENTRY_ID_LEN {
        return Err(DataStoreError::invalid(format!(
            "entry ID is {} characters long: it must be at most {MAX_ENTRY_ID_LEN}",
            id.len()
        )));
    }
    if let Some(bad) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(DataStoreError::invalid(format!(
            "entry ID {id:?} contains {bad:?}: only letters, digits, '.', '_' and '-' are allowed"
        )));
    }
    Ok(())
}

/// The rules on an entry's content, checked on create and on the merged result of an update.
/// Expects normalized selectors.
pub(crate) fn entry(entry: &RegistrationEntry) -> Result<(), DataStoreError> {
    entry_id(&entry.id)?;
    if entry.selectors.is_empty() {
        return Err(DataStoreError::invalid(format!(
            "entry {} has no selectors: give at least one, or it would match no workload",
            entry.id
        )));
    }
    selectors(&entry.selectors, &format!("entry {}", entry.id))?;
    if entry.x509_svid_ttl < 0 || entry.jwt_svid_ttl < 0 {
        return Err(DataStoreError::invalid(format!(
            "entry {} has a negative SVID TTL: use 0 for the server default or a positive number of seconds",
            entry.id
        )));
    }
    if entry.store_svid && entry.selectors.iter().any(|s| s.kind != entry.selectors[0].kind) {
        return Err(DataStoreError::invalid(format!(
            "entry {} stores its SVID, so all its selectors must be of the same type (the SVIDStore plugin's)",
            entry.id
        )));
    }
    Ok(())
}

/// Selector fields are public, so a malformed one can be built without `Selector::new`; refuse it
/// before it reaches the database.
pub(crate) fn selectors(selectors: &[Selector], owner: &str) -> Result<(), DataStoreError> {
    for s in selectors {
        if Selector::new(s.kind.as_str(), s.value.as_str()).is_err() {
            return Err(DataStoreError::invalid(format!(
                "{owner} has selector {:?}:{:?}: selectors need a non-empty type without ':' and a non-empty value",
                s.kind, s.value
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids() {
        assert!(entry_id("a-Z_0.9").is_ok());
        assert!(entry_id(&"a".repeat(255)).is_ok());
        assert!(entry_id(&"a".repeat(256)).is_err());
        assert!(entry_id("").is_err());
        for bad in ["a b", "a/b", "é", "a:b"] {
            assert!(matches!(entry_id(bad), Err(DataStoreError::InvalidArgument(_))), "{bad}");
        }
    }
}
