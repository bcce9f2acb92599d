//! CA slots and the rotation schedule.
//!
//! Each authority (the X.509 CA and the JWT signing key) has two slots, A and B. The next authority is
//! prepared in the free slot well before the current one expires, so that it reaches every bundle
//! consumer before it signs anything, and is activated later (SPIRE's thresholds).

use std::time::Duration;

use serde::{Deserialize, Serialize};

const THIRTY_DAYS: i64 = 30 * 24 * 3600;
const SEVEN_DAYS: i64 = 7 * 24 * 3600;

/// One of the two slots of an authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SlotId {
    /// Slot A.
    A,
    /// Slot B.
    B,
}

impl SlotId {
    /// The other slot.
    pub fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }

    /// The KeyManager key ID of the X.509 CA key in this slot.
    pub fn x509_key_id(self) -> &'static str {
        match self {
            Self::A => "x509-CA-A",
            Self::B => "x509-CA-B",
        }
    }

    /// The KeyManager key ID of the JWT signing key in this slot.
    pub fn jwt_key_id(self) -> &'static str {
        match self {
            Self::A => "JWT-Signer-A",
            Self::B => "JWT-Signer-B",
        }
    }
}

/// Where an authority is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotStatus {
    /// Published in the bundle, not yet signing.
    Prepared,
    /// Signing.
    Active,
    /// Replaced; kept in the journal until it expires.
    Old,
}

/// When to prepare the next authority: `min(lifetime/2, 30d)` before `not_after`.
pub fn prepare_at(issued_at: i64, not_after: i64) -> i64 {
    not_after - ((not_after - issued_at) / 2).min(THIRTY_DAYS)
}

/// When to activate the prepared authority: `min(lifetime/6, 7d)` before `not_after`.
pub fn activate_at(issued_at: i64, not_after: i64) -> i64 {
    not_after - ((not_after - issued_at) / 6).min(SEVEN_DAYS)
}

/// The longest SVID lifetime a CA of `ca_ttl` can guarantee: `min(ca_ttl/6, 7d)`.
pub fn max_svid_ttl(ca_ttl: Duration) -> Duration {
    (ca_ttl / 6).min(Duration::from_secs(SEVEN_DAYS as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spire_thresholds_for_a_24h_ca() {
        let day = 24 * 3600;
        assert_eq!(prepare_at(0, day), 12 * 3600);
        assert_eq!(activate_at(0, day), 20 * 3600);
        assert_eq!(max_svid_ttl(Duration::from_secs(day as u64)), Duration::from_secs(4 * 3600));
    }

    #[test]
    fn long_lived_cas_cap_at_30_and_7_days() {
        let year = 365 * 24 * 3600;
        assert_eq!(prepare_at(0, year), year - THIRTY_DAYS);
        assert_eq!(activate_at(0, year), year - SEVEN_DAYS);
    }

    #[test]
    fn slots_alternate() {
        assert_eq!(SlotId::A.other(), SlotId::B);
        assert_eq!(SlotId::B.x509_key_id(), "x509-CA-B");
        assert_eq!(SlotId::A.jwt_key_id(), "JWT-Signer-A");
    }
}
