//! Trust bundles as stored: the X.509 and JWT authorities of one trust domain. On disk a bundle is
//! the protobuf encoding of `spire.api.types.Bundle`, so a row can be served by the API without
//! re-assembly and new protobuf fields can be added without a schema migration.

use prost::Message;
use spire_identity::TrustDomain;
use spire_proto::spire::api::types as pb;

use crate::DataStoreError;

/// An X.509 root (CA certificate) of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Authority {
    /// The DER certificate.
    pub der: Vec<u8>,
    /// Tainted authorities must no longer sign: agents rotate the SVIDs they signed.
    pub tainted: bool,
}

/// A JWT signing key of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtKey {
    /// The `kid`.
    pub key_id: String,
    /// SubjectPublicKeyInfo DER.
    pub public_key_der: Vec<u8>,
    /// Unix seconds; 0 means no expiry.
    pub expires_at: i64,
    /// Tainted keys must no longer sign.
    pub tainted: bool,
}

/// A trust domain's bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBundle {
    /// The trust domain; the key.
    pub trust_domain: TrustDomain,
    /// X.509 roots.
    pub x509_authorities: Vec<X509Authority>,
    /// JWT signing keys.
    pub jwt_authorities: Vec<JwtKey>,
    /// Suggested refresh interval in seconds for federated consumers; 0 when unknown.
    pub refresh_hint: i64,
    /// Bumped whenever the authorities change, so consumers can tell bundles apart cheaply.
    pub sequence_number: u64,
}

/// Which fields `update_bundle` changes; the trust domain selects the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BundleMask {
    /// Replace `x509_authorities`.
    pub x509_authorities: bool,
    /// Replace `jwt_authorities`.
    pub jwt_authorities: bool,
    /// Update `refresh_hint`.
    pub refresh_hint: bool,
    /// Update `sequence_number`.
    pub sequence_number: bool,
}

impl BundleMask {
    /// Every updatable field.
    pub const ALL: Self =
        Self { x509_authorities: true, jwt_authorities: true, refresh_hint: true, sequence_number: true };

    /// Copies the masked fields of `update` into `stored`.
    pub fn apply(&self, stored: &mut StoredBundle, update: StoredBundle) {
        if self.x509_authorities {
            stored.x509_authorities = update.x509_authorities;
        }
        if self.jwt_authorities {
            stored.jwt_authorities = update.jwt_authorities;
        }
        if self.refresh_hint {
            stored.refresh_hint = update.refresh_hint;
        }
        if self.sequence_number {
            stored.sequence_number = update.sequence_number;
        }
    }
}

/// What `delete_bundle` does to registration entries that federate with the bundle's trust domain
/// (`BatchDeleteFederatedBundleRequest.Mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeleteMode {
    /// Refuse to delete while any entry federates with it.
    #[default]
    Restrict,
    /// Delete those entries too.
    Delete,
    /// Remove the trust domain from those entries' `federates_with`.
    Dissociate,
}

impl StoredBundle {
    /// An empty bundle for `trust_domain`.
    pub fn new(trust_domain: TrustDomain) -> Self {
        Self {
            trust_domain,
            x509_authorities: Vec::new(),
            jwt_authorities: Vec::new(),
            refresh_hint: 0,
            sequence_number: 0,
        }
    }

    /// The API form. Hints and WIT authorities are not stored and come back empty.
    pub fn to_proto(&self) -> pb::Bundle {
        pb::Bundle {
            trust_domain: self.trust_domain.as_str().to_owned(),
            x509_authorities: self
                .x509_authorities
                .iter()
                .map(|a| pb::X509Certificate { asn1: a.der.clone(), tainted: a.tainted, hint: String::new() })
                .collect(),
            jwt_authorities: self
                .jwt_authorities
                .iter()
                .map(|k| pb::JwtKey {
                    public_key: k.public_key_der.clone(),
                    key_id: k.key_id.clone(),
                    expires_at: k.expires_at,
                    tainted: k.tainted,
                    hint: String::new(),
                })
                .collect(),
            refresh_hint: self.refresh_hint,
            sequence_number: self.sequence_number,
            wit_authorities: Vec::new(),
        }
    }

    /// From the API form; the trust domain may be a bare name or a `spiffe://` trust domain ID.
    pub fn from_proto(bundle: pb::Bundle) -> Result<Self, DataStoreError> {
        let trust_domain = TrustDomain::parse(&bundle.trust_domain).map_err(|e| {
            DataStoreError::invalid(format!("bundle trust domain {:?} is not valid: {e}", bundle.trust_domain))
        })?;
        Ok(Self {
            trust_domain,
            x509_authorities: bundle
                .x509_authorities
                .into_iter()
                .map(|a| X509Authority { der: a.asn1, tainted: a.tainted })
                .collect(),
            jwt_authorities: bundle
                .jwt_authorities
                .into_iter()
                .map(|k| JwtKey {
                    key_id: k.key_id,
                    public_key_der: k.public_key,
                    expires_at: k.expires_at,
                    tainted: k.tainted,
                })
                .collect(),
            refresh_hint: bundle.refresh_hint,
            sequence_number: bundle.sequence_number,
        })
    }

    /// The bytes stored in `bundles.data`.
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Reads `bundles.data`.
    pub fn decode(bytes: &[u8]) -> Result<Self, DataStoreError> {
        let proto = pb::Bundle::decode(bytes)
            .map_err(|e| DataStoreError::internal(format!("stored bundle is not a valid protobuf Bundle: {e}")))?;
        Self::from_proto(proto).map_err(|e| DataStoreError::internal(format!("stored bundle is not valid: {e}")))
    }

    /// Adds the authorities of `other` that this bundle lacks (X.509 roots compared by DER, JWT keys by
    /// key ID and key), keeping the stored taint flags. Bumps the sequence number and returns true
    /// when anything was added.
    pub fn merge(&mut self, other: &StoredBundle) -> bool {
        let mut changed = false;
        for authority in &other.x509_authorities {
            if !self.x509_authorities.iter().any(|a| a.der == authority.der) {
                self.x509_authorities.push(authority.clone());
                changed = true;
            }
        }
        for key in &other.jwt_authorities {
            if !self.jwt_authorities.iter().any(|k| k.key_id == key.key_id && k.public_key_der == key.public_key_der) {
                self.jwt_authorities.push(key.clone());
                changed = true;
            }
        }
        if changed {
            self.sequence_number += 1;
        }
        changed
    }

    /// Drops X.509 roots whose NotAfter and JWT keys whose expiry is before `expires_before` (unix s),
    /// bumping the sequence number when anything went. Refuses (FailedPrecondition) rather than leave
    /// a bundle that had X.509 roots with none: every SVID of the trust domain would stop verifying.
    pub fn prune(&mut self, expires_before: i64) -> Result<bool, DataStoreError> {
        let mut keep = Vec::with_capacity(self.x509_authorities.len());
        for authority in &self.x509_authorities {
            if certificate_not_after(&authority.der).map_err(|e| {
                DataStoreError::internal(format!(
                    "bundle of {} holds an X.509 authority that cannot be parsed ({e}); \
                     replace the bundle's X.509 authorities",
                    self.trust_domain
                ))
            })? >= expires_before
            {
                keep.push(authority.clone());
            }
        }
        if keep.is_empty() && !self.x509_authorities.is_empty() {
            return Err(DataStoreError::FailedPrecondition(format!(
                "pruning halted: every X.509 authority of the bundle of {} expires before {expires_before}, \
                 and a bundle must keep at least one; add a current authority first",
                self.trust_domain
            )));
        }
        let before = (self.x509_authorities.len(), self.jwt_authorities.len());
        self.x509_authorities = keep;
        self.jwt_authorities.retain(|k| k.expires_at == 0 || k.expires_at >= expires_before);
        let changed = before != (self.x509_authorities.len(), self.jwt_authorities.len());
        if changed {
            self.sequence_number += 1;
        }
        Ok(changed)
    }
}

fn certificate_not_after(der: &[u8]) -> Result<i64, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    Ok(cert.validity().not_after.timestamp())
}

impl From<&StoredBundle> for pb::Bundle {
    fn from(bundle: &StoredBundle) -> Self {
        bundle.to_proto()
    }
}

impl TryFrom<pb::Bundle> for StoredBundle {
    type Error = DataStoreError;
    fn try_from(bundle: pb::Bundle) -> Result<Self, Self::Error> {
        Self::from_proto(bundle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, expires_at: i64) -> JwtKey {
        JwtKey { key_id: id.into(), public_key_der: id.as_bytes().to_vec(), expires_at, tainted: false }
    }

    #[test]
    fn proto_round_trip() {
        let mut bundle = StoredBundle::new(TrustDomain::parse("example.org").unwrap());
        bundle.x509_authorities.push(X509Authority { der: vec![1, 2, 3], tainted: true });
        bundle.jwt_authorities.push(key("k1", 99));
        bundle.refresh_hint = 60;
        bundle.sequence_number = 7;
        assert_eq!(StoredBundle::decode(&bundle.encode()).unwrap(), bundle);
        let proto = pb::Bundle::from(&bundle);
        assert_eq!(proto.trust_domain, "example.org");
        assert_eq!(StoredBundle::try_from(proto).unwrap(), bundle);
        let by_id = pb::Bundle { trust_domain: "spiffe://example.org".into(), ..Default::default() };
        assert_eq!(StoredBundle::try_from(by_id).unwrap().trust_domain.as_str(), "example.org");
        assert!(StoredBundle::decode(b"\xff\xff").is_err());
    }

    #[test]
    fn merge_skips_known_authorities() {
        let td = TrustDomain::parse("example.org").unwrap();
        let mut stored = StoredBundle::new(td.clone());
        stored.jwt_authorities.push(JwtKey { tainted: true, ..key("k1", 10) });
        let mut incoming = StoredBundle::new(td);
        incoming.jwt_authorities.push(key("k1", 10));
        assert!(!stored.merge(&incoming));
        assert_eq!(stored.sequence_number, 0);
        assert!(stored.jwt_authorities[0].tainted);
        incoming.jwt_authorities.push(key("k2", 10));
        assert!(stored.merge(&incoming));
        assert_eq!((stored.jwt_authorities.len(), stored.sequence_number), (2, 1));
    }

    #[test]
    fn prune_keeps_unexpiring_jwt_keys() {
        let mut bundle = StoredBundle::new(TrustDomain::parse("example.org").unwrap());
        bundle.jwt_authorities = vec![key("old", 5), key("forever", 0), key("new", 50)];
        assert!(bundle.prune(10).unwrap());
        let ids: Vec<_> = bundle.jwt_authorities.iter().map(|k| k.key_id.as_str()).collect();
        assert_eq!(ids, ["forever", "new"]);
        assert!(!bundle.prune(10).unwrap());
        assert_eq!(bundle.sequence_number, 1);
    }
}
