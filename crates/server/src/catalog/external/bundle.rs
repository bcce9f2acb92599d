//! The bundle as spire-plugin-sdk's `spire.plugin.types.Bundle`, the form notifiers, bundle
//! publishers and the IdentityProvider host service hand to plugins.

use spire_datastore::StoredBundle;
use spire_proto::spire::plugin::types;

/// `stored` in the plugin SDK's types.
pub fn to_plugin(stored: &StoredBundle) -> types::Bundle {
    types::Bundle {
        trust_domain: stored.trust_domain.to_string(),
        x509_authorities: stored
            .x509_authorities
            .iter()
            .map(|a| types::X509Certificate { asn1: a.der.clone(), tainted: a.tainted })
            .collect(),
        jwt_authorities: stored
            .jwt_authorities
            .iter()
            .map(|k| types::JwtKey {
                public_key: k.public_key_der.clone(),
                key_id: k.key_id.clone(),
                expires_at: k.expires_at,
                tainted: k.tainted,
            })
            .collect(),
        refresh_hint: stored.refresh_hint,
        sequence_number: stored.sequence_number,
    }
}
