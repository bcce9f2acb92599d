//! The CA journal: what each slot holds, persisted in the datastore so that a restarted server resumes
//! with the same authorities instead of minting new ones (and so that several servers sharing one
//! database each find their own).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::slot::{SlotId, SlotStatus};

/// How many authorities of each kind the journal remembers.
const MAX_ENTRIES: usize = 6;

/// An X.509 CA the server has prepared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct X509CaEntry {
    /// Its slot.
    pub slot: SlotId,
    /// Its state.
    pub status: SlotStatus,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// Our CA first, then upstream intermediates (empty beyond the CA when self-signed).
    #[serde(with = "der_list")]
    pub chain: Vec<Vec<u8>>,
    /// Whether the CA is its own root (no upstream authority).
    pub self_signed: bool,
    /// Hex subject key ID: the authority ID of the LocalAuthority API and the journal lookup key.
    pub authority_id: String,
}

/// A JWT signing key the server has prepared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtKeyEntry {
    /// Its slot.
    pub slot: SlotId,
    /// Its state.
    pub status: SlotStatus,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// The `kid`, which is also its authority ID.
    pub key_id: String,
    /// SubjectPublicKeyInfo DER.
    #[serde(with = "der")]
    pub public_key_der: Vec<u8>,
}

/// Every authority the server remembers, newest last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// X.509 CAs.
    pub x509: Vec<X509CaEntry>,
    /// JWT keys.
    pub jwt: Vec<JwtKeyEntry>,
}

impl Journal {
    /// Reads a journal written by [`Journal::encode`].
    pub fn decode(data: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(data)
    }

    /// Serializes the journal for the datastore.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("plain data")
    }

    /// The X.509 CA in `status`, if any.
    pub fn x509_with(&self, status: SlotStatus) -> Option<&X509CaEntry> {
        self.x509.iter().rev().find(|e| e.status == status)
    }

    /// The JWT key in `status`, if any.
    pub fn jwt_with(&self, status: SlotStatus) -> Option<&JwtKeyEntry> {
        self.jwt.iter().rev().find(|e| e.status == status)
    }

    /// Records a prepared CA, dropping any stale prepared one and the oldest entries.
    pub fn add_x509(&mut self, entry: X509CaEntry) {
        self.x509.retain(|e| e.status != SlotStatus::Prepared);
        self.x509.push(entry);
        trim(&mut self.x509);
    }

    /// Records a prepared JWT key, dropping any stale prepared one and the oldest entries.
    pub fn add_jwt(&mut self, entry: JwtKeyEntry) {
        self.jwt.retain(|e| e.status != SlotStatus::Prepared);
        self.jwt.push(entry);
        trim(&mut self.jwt);
    }

    /// Makes the prepared X.509 CA active and the active one old.
    pub fn activate_x509(&mut self) {
        activate(self.x509.iter_mut().map(|e| &mut e.status));
    }

    /// Makes the prepared JWT key active and the active one old.
    pub fn activate_jwt(&mut self) {
        activate(self.jwt.iter_mut().map(|e| &mut e.status));
    }

    /// When the last remembered authority expires (for journal pruning).
    pub fn expires_at(&self) -> i64 {
        self.x509.iter().map(|e| e.not_after).chain(self.jwt.iter().map(|e| e.not_after)).max().unwrap_or(0)
    }
}

fn activate<'a>(statuses: impl Iterator<Item = &'a mut SlotStatus>) {
    for status in statuses {
        *status = match *status {
            SlotStatus::Prepared => SlotStatus::Active,
            SlotStatus::Active | SlotStatus::Old => SlotStatus::Old,
        };
    }
}

fn trim<T>(entries: &mut Vec<T>) {
    if entries.len() > MAX_ENTRIES {
        entries.drain(..entries.len() - MAX_ENTRIES);
    }
}

mod der {
    use super::*;

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        STANDARD.decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod der_list {
    use super::*;

    pub(super) fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|b| STANDARD.encode(b)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .into_iter()
            .map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x509(slot: SlotId, status: SlotStatus) -> X509CaEntry {
        X509CaEntry {
            slot,
            status,
            issued_at: 1,
            not_after: 100,
            chain: vec![vec![1, 2, 3]],
            self_signed: true,
            authority_id: format!("{slot:?}"),
        }
    }

    #[test]
    fn round_trips_and_activates() {
        let mut j = Journal::default();
        j.add_x509(x509(SlotId::A, SlotStatus::Prepared));
        j.activate_x509();
        j.add_x509(x509(SlotId::B, SlotStatus::Prepared));
        assert_eq!(j.x509_with(SlotStatus::Active).unwrap().slot, SlotId::A);
        j.activate_x509();
        assert_eq!(j.x509_with(SlotStatus::Active).unwrap().slot, SlotId::B);
        assert_eq!(j.x509_with(SlotStatus::Old).unwrap().slot, SlotId::A);
        assert_eq!(Journal::decode(&j.encode()).unwrap(), j);
        assert_eq!(j.expires_at(), 100);
    }

    #[test]
    fn keeps_a_bounded_history() {
        let mut j = Journal::default();
        for i in 0..20 {
            j.add_x509(x509(if i % 2 == 0 { SlotId::A } else { SlotId::B }, SlotStatus::Prepared));
            j.activate_x509();
        }
        assert_eq!(j.x509.len(), MAX_ENTRIES);
    }
}
