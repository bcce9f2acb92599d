//! Registration entries as the store keeps them: typed IDs and selectors instead of the API's strings,
//! so that every backend compares and sorts them the same way.

use spire_identity::{Selector, SelectorSet, SpiffeId, TrustDomain};

/// A registration entry: which workloads (selectors, under which parent) get which SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationEntry {
    /// Entry ID; empty on create to have the store generate a UUIDv4.
    pub id: String,
    /// The identity handed out.
    pub spiffe_id: SpiffeId,
    /// The agent (or node alias, or other entry) this entry hangs under.
    pub parent_id: SpiffeId,
    /// Selectors the workload must show; kept sorted and without duplicates by the store.
    pub selectors: Vec<Selector>,
    /// X509-SVID TTL in seconds; 0 means the server default.
    pub x509_svid_ttl: i32,
    /// JWT-SVID TTL in seconds; 0 means the server default.
    pub jwt_svid_ttl: i32,
    /// Trust domains whose bundles the workload also receives; sorted, no duplicates. Each must have
    /// a stored bundle.
    pub federates_with: Vec<TrustDomain>,
    /// Whether the identity may call the server's admin APIs.
    pub admin: bool,
    /// Whether the identity may mint downstream CAs.
    pub downstream: bool,
    /// Unix seconds after which the entry is pruned; 0 means never.
    pub expires_at: i64,
    /// DNS SANs in the order given: the first one becomes the certificate's CN.
    pub dns_names: Vec<String>,
    /// Bumped by one on every update; agents compare it to know when to refresh.
    pub revision_number: i64,
    /// Whether the agent stores the SVID through an SVIDStore plugin instead of serving it.
    pub store_svid: bool,
    /// Free-form hint for workloads that receive several identities.
    pub hint: String,
    /// Unix seconds; set by the store on create.
    pub created_at: i64,
    /// Whether the agent waits for a workload to ask before minting the X509-SVID.
    pub disable_x509_svid_prefetch: bool,
    /// Whether JWT-SVIDs of this entry carry a `jti` claim.
    pub jwt_svid_include_jti: bool,
}

impl RegistrationEntry {
    /// An entry with the given identity, parent and selectors and every other field at its default.
    pub fn new(spiffe_id: SpiffeId, parent_id: SpiffeId, selectors: impl IntoIterator<Item = Selector>) -> Self {
        let mut entry = Self {
            id: String::new(),
            spiffe_id,
            parent_id,
            selectors: selectors.into_iter().collect(),
            x509_svid_ttl: 0,
            jwt_svid_ttl: 0,
            federates_with: Vec::new(),
            admin: false,
            downstream: false,
            expires_at: 0,
            dns_names: Vec::new(),
            revision_number: 0,
            store_svid: false,
            hint: String::new(),
            created_at: 0,
            disable_x509_svid_prefetch: false,
            jwt_svid_include_jti: false,
        };
        entry.normalize();
        entry
    }

    /// The selectors as a set, for match-mode comparisons.
    pub fn selector_set(&self) -> SelectorSet {
        self.selectors.iter().cloned().collect()
    }

    /// Sorts and de-duplicates the set-valued fields, so that equal entries compare equal whatever
    /// order the caller gave them in. DNS names keep their order: the first is the CN.
    pub(crate) fn normalize(&mut self) {
        self.selectors.sort();
        self.selectors.dedup();
        self.federates_with.sort();
        self.federates_with.dedup();
    }

    /// A digest of (parent ID, SPIFFE ID, selector set): two entries with the same digest are
    /// "similar", which SPIRE refuses. Storing it under a unique index lets the database itself enforce
    /// the rule under concurrency, on every backend, with a fixed-size key MySQL can index.
    /// Expects normalized selectors.
    pub(crate) fn similarity_digest(&self) -> Vec<u8> {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mut field = |bytes: &[u8]| {
            ctx.update(&(bytes.len() as u64).to_be_bytes());
            ctx.update(bytes);
        };
        field(self.parent_id.to_string().as_bytes());
        field(self.spiffe_id.to_string().as_bytes());
        for selector in &self.selectors {
            field(selector.kind.as_bytes());
            field(selector.value.as_bytes());
        }
        ctx.finish().as_ref().to_vec()
    }
}

/// Which fields an update changes; the others keep their stored values. The ID selects the entry;
/// the revision number and creation time are the store's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntryMask {
    /// Update `spiffe_id`.
    pub spiffe_id: bool,
    /// Update `parent_id`.
    pub parent_id: bool,
    /// Update `selectors`.
    pub selectors: bool,
    /// Update `x509_svid_ttl`.
    pub x509_svid_ttl: bool,
    /// Update `jwt_svid_ttl`.
    pub jwt_svid_ttl: bool,
    /// Update `federates_with`.
    pub federates_with: bool,
    /// Update `admin`.
    pub admin: bool,
    /// Update `downstream`.
    pub downstream: bool,
    /// Update `expires_at`.
    pub expires_at: bool,
    /// Update `dns_names`.
    pub dns_names: bool,
    /// Update `store_svid`.
    pub store_svid: bool,
    /// Update `hint`.
    pub hint: bool,
    /// Update `disable_x509_svid_prefetch`.
    pub disable_x509_svid_prefetch: bool,
    /// Update `jwt_svid_include_jti`.
    pub jwt_svid_include_jti: bool,
}

impl EntryMask {
    /// Every updatable field.
    pub const ALL: Self = Self {
        spiffe_id: true,
        parent_id: true,
        selectors: true,
        x509_svid_ttl: true,
        jwt_svid_ttl: true,
        federates_with: true,
        admin: true,
        downstream: true,
        expires_at: true,
        dns_names: true,
        store_svid: true,
        hint: true,
        disable_x509_svid_prefetch: true,
        jwt_svid_include_jti: true,
    };

    /// Copies the masked fields of `update` into `stored`.
    pub fn apply(&self, stored: &mut RegistrationEntry, update: RegistrationEntry) {
        macro_rules! take {
            ($($field:ident),*) => { $( if self.$field { stored.$field = update.$field; } )* };
        }
        take!(
            spiffe_id,
            parent_id,
            selectors,
            x509_svid_ttl,
            jwt_svid_ttl,
            federates_with,
            admin,
            downstream,
            expires_at,
            dns_names,
            store_svid,
            hint,
            disable_x509_svid_prefetch,
            jwt_svid_include_jti
        );
        stored.normalize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    #[test]
    fn digest_ignores_selector_order_and_separates_fields() {
        let sel = |s: &str| Selector::parse(s).unwrap();
        let a = RegistrationEntry::new(id("spiffe://td/a"), id("spiffe://td/p"), [sel("u:1"), sel("u:2")]);
        let b = RegistrationEntry::new(id("spiffe://td/a"), id("spiffe://td/p"), [sel("u:2"), sel("u:1"), sel("u:1")]);
        assert_eq!(a.similarity_digest(), b.similarity_digest());
        let c = RegistrationEntry::new(id("spiffe://td/p"), id("spiffe://td/a"), [sel("u:1"), sel("u:2")]);
        assert_ne!(a.similarity_digest(), c.similarity_digest());
        let d = RegistrationEntry::new(id("spiffe://td/a"), id("spiffe://td/p"), [sel("u:1:u:2")]);
        assert_ne!(a.similarity_digest(), d.similarity_digest());
    }

    #[test]
    fn mask_copies_only_masked_fields() {
        let sel = |s: &str| Selector::parse(s).unwrap();
        let mut stored = RegistrationEntry::new(id("spiffe://td/a"), id("spiffe://td/p"), [sel("u:1")]);
        let mut update = RegistrationEntry::new(id("spiffe://td/b"), id("spiffe://td/q"), [sel("u:3"), sel("u:2")]);
        update.hint = "h".into();
        EntryMask { selectors: true, hint: true, ..EntryMask::default() }.apply(&mut stored, update);
        assert_eq!(stored.spiffe_id, id("spiffe://td/a"));
        assert_eq!(stored.selectors, vec![sel("u:2"), sel("u:3")]);
        assert_eq!(stored.hint, "h");
    }
}
