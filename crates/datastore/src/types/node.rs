//! Attested nodes (agents) and the selectors their attestation produced.

use spire_identity::{Selector, SpiffeId};

/// An agent the server has attested. It is banned when it has no current certificate serial number:
/// the server then refuses its SVID until it attests again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedNode {
    /// The agent's SPIFFE ID.
    pub spiffe_id: SpiffeId,
    /// The node attestor that vouched for it, e.g. `join_token`, `x509pop`.
    pub attestation_data_type: String,
    /// Serial number of the agent's current X509-SVID; empty when banned.
    pub cert_serial_number: String,
    /// NotAfter (unix s) of the current X509-SVID.
    pub cert_not_after: i64,
    /// Serial number of an SVID issued but not yet used by the agent (rotation in flight).
    pub new_cert_serial_number: String,
    /// NotAfter (unix s) of that new SVID.
    pub new_cert_not_after: i64,
    /// Whether the agent re-attests instead of renewing.
    pub can_reattest: bool,
    /// Version the agent reported.
    pub agent_version: String,
    /// Selectors from attestation; sorted, no duplicates.
    pub selectors: Vec<Selector>,
}

impl AttestedNode {
    /// A node with the given ID and attestor and every other field empty.
    pub fn new(spiffe_id: SpiffeId, attestation_data_type: impl Into<String>) -> Self {
        Self {
            spiffe_id,
            attestation_data_type: attestation_data_type.into(),
            cert_serial_number: String::new(),
            cert_not_after: 0,
            new_cert_serial_number: String::new(),
            new_cert_not_after: 0,
            can_reattest: false,
            agent_version: String::new(),
            selectors: Vec::new(),
        }
    }

    /// Whether the node is banned (no current certificate serial number).
    pub fn is_banned(&self) -> bool {
        self.cert_serial_number.is_empty()
    }

    pub(crate) fn normalize(&mut self) {
        self.selectors.sort();
        self.selectors.dedup();
    }
}

/// Which fields an update changes; the SPIFFE ID selects the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeMask {
    /// Update `cert_serial_number` (clearing it bans the node).
    pub cert_serial_number: bool,
    /// Update `cert_not_after`.
    pub cert_not_after: bool,
    /// Update `new_cert_serial_number`.
    pub new_cert_serial_number: bool,
    /// Update `new_cert_not_after`.
    pub new_cert_not_after: bool,
    /// Update `can_reattest`.
    pub can_reattest: bool,
    /// Update `agent_version`.
    pub agent_version: bool,
    /// Replace the node's selectors, in the same transaction (re-attestation).
    pub selectors: bool,
}

impl NodeMask {
    /// Every updatable field.
    pub const ALL: Self = Self {
        cert_serial_number: true,
        cert_not_after: true,
        new_cert_serial_number: true,
        new_cert_not_after: true,
        can_reattest: true,
        agent_version: true,
        selectors: true,
    };

    /// Copies the masked fields of `update` into `stored`.
    pub fn apply(&self, stored: &mut AttestedNode, update: AttestedNode) {
        macro_rules! take {
            ($($field:ident),*) => { $( if self.$field { stored.$field = update.$field; } )* };
        }
        take!(
            cert_serial_number,
            cert_not_after,
            new_cert_serial_number,
            new_cert_not_after,
            can_reattest,
            agent_version,
            selectors
        );
        stored.normalize();
    }
}
