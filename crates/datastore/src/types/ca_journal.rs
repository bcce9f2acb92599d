//! The CA journal: the server's record of its prepared, active and old authorities (slots A/B),
//! opaque to the store except for the keys it is looked up and pruned by.

/// One journal. The server owns the encoding of `data`; the store only indexes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaJournal {
    /// 0 to insert a new journal; otherwise the ID of the journal to overwrite.
    pub id: i64,
    /// The serialized journal.
    pub data: Vec<u8>,
    /// Authority ID (subject key ID) of the X.509 CA active when written; the lookup key at startup.
    pub active_x509_authority_id: String,
    /// Key ID of the JWT key active when written.
    pub active_jwt_authority_id: String,
    /// Unix seconds when the last of the journal's authorities expires. The store cannot read `data`,
    /// so the server states it here; `prune_ca_journals` drops journals whose `expires_at` is before
    /// its cutoff. 0 means unknown: such a journal is never pruned.
    pub expires_at: i64,
}
