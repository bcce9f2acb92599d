//! An external CredentialComposer: SPIRE's `ComposeAgentX509SVID`, `ComposeWorkloadX509SVID` and
//! `ComposeWorkloadJWTSVID` behind our [`CredentialComposer`] trait.
//!
//! As SPIRE's facade: a plugin answering `Unimplemented`, or with no attributes, leaves them
//! unchanged. Subject parts our certificates cannot carry yet (locality, province, street, postal
//! code, serial number, extra names) and extra extensions are refused rather than dropped.

use prost_types::value::Kind;
use spire_identity::SpiffeId;
use spire_identity::x509::Subject;
use spire_proto::spire::plugin::server::credentialcomposer::v1 as pb;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::facade_status;
use crate::catalog::credentialcomposer::{CredentialComposer, X509SvidAttributes, X509SvidKind};

/// The SDK service an external CredentialComposer serves.
pub const SERVICE: &str = "spire.plugin.server.credentialcomposer.v1.CredentialComposer";

/// A CredentialComposer served by an external plugin.
#[derive(Debug, Clone)]
pub struct ExternalCredentialComposer {
    name: String,
    client: pb::credential_composer_client::CredentialComposerClient<Channel>,
}

impl ExternalCredentialComposer {
    /// The facade for the plugin `name` on `channel`.
    pub fn new(name: &str, channel: Channel) -> Self {
        Self { name: name.to_owned(), client: pb::credential_composer_client::CredentialComposerClient::new(channel) }
    }

    fn fail(&self, status: &Status) -> Status {
        facade_status("credentialcomposer", &self.name, status)
    }

    fn composed(&self, attributes: pb::X509svidAttributes) -> Result<X509SvidAttributes, Status> {
        let dn = attributes.subject.unwrap_or_default();
        let unsupported = !dn.locality.is_empty()
            || !dn.province.is_empty()
            || !dn.street_address.is_empty()
            || !dn.postal_code.is_empty()
            || !dn.serial_number.is_empty()
            || !dn.extra_names.is_empty();
        if unsupported || !attributes.extra_extensions.is_empty() {
            return Err(self.fail(&Status::new(
                Code::Unimplemented,
                "composed subject names (locality, province, street address, postal code, serial number, extra names) and extra extensions are not supported by spire-rs",
            )));
        }
        Ok(X509SvidAttributes {
            subject: Subject {
                country: dn.country,
                organization: dn.organization,
                organizational_unit: dn.organizational_unit,
                common_name: Some(dn.common_name).filter(|c| !c.is_empty()),
            },
            dns_names: attributes.dns_sans,
        })
    }
}

fn to_plugin(attributes: &X509SvidAttributes) -> pb::X509svidAttributes {
    let s = &attributes.subject;
    pb::X509svidAttributes {
        subject: Some(pb::DistinguishedName {
            country: s.country.clone(),
            organization: s.organization.clone(),
            organizational_unit: s.organizational_unit.clone(),
            common_name: s.common_name.clone().unwrap_or_default(),
            ..Default::default()
        }),
        dns_sans: attributes.dns_names.clone(),
        extra_extensions: Vec::new(),
    }
}

#[async_trait::async_trait]
impl CredentialComposer for ExternalCredentialComposer {
    fn name(&self) -> &str {
        &self.name
    }

    async fn compose_x509_svid(
        &self,
        kind: X509SvidKind,
        id: &SpiffeId,
        public_key: &[u8],
        attributes: X509SvidAttributes,
    ) -> Result<X509SvidAttributes, Status> {
        let mut client = self.client.clone();
        let (spiffe_id, public_key, pb_attributes) =
            (id.to_string(), public_key.to_vec(), Some(to_plugin(&attributes)));
        let answer = match kind {
            X509SvidKind::Agent => client
                .compose_agent_x509svid(pb::ComposeAgentX509svidRequest {
                    attributes: pb_attributes,
                    spiffe_id,
                    public_key,
                })
                .await
                .map(|r| r.into_inner().attributes),
            X509SvidKind::Workload => client
                .compose_workload_x509svid(pb::ComposeWorkloadX509svidRequest {
                    attributes: pb_attributes,
                    spiffe_id,
                    public_key,
                })
                .await
                .map(|r| r.into_inner().attributes),
        };
        match answer {
            Ok(Some(composed)) => self.composed(composed),
            Ok(None) => Ok(attributes),
            Err(s) if s.code() == Code::Unimplemented => Ok(attributes),
            Err(s) => Err(self.fail(&s)),
        }
    }

    async fn compose_workload_jwt_svid(
        &self,
        id: &SpiffeId,
        claims: serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, Status> {
        let request = pb::ComposeWorkloadJwtsvidRequest {
            attributes: Some(pb::JwtsvidAttributes { claims: Some(to_struct(&claims)) }),
            spiffe_id: id.to_string(),
        };
        match self.client.clone().compose_workload_jwtsvid(request).await {
            Ok(response) => match response.into_inner().attributes.and_then(|a| a.claims) {
                Some(composed) => Ok(from_struct(composed)),
                None => Ok(claims),
            },
            Err(s) if s.code() == Code::Unimplemented => Ok(claims),
            Err(s) => Err(self.fail(&s)),
        }
    }
}

fn to_struct(map: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct { fields: map.iter().map(|(k, v)| (k.clone(), to_value(v))).collect() }
}

fn to_value(value: &serde_json::Value) -> prost_types::Value {
    use serde_json::Value as J;
    let kind = match value {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(*b),
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        J::String(s) => Kind::StringValue(s.clone()),
        J::Array(items) => Kind::ListValue(prost_types::ListValue { values: items.iter().map(to_value).collect() }),
        J::Object(map) => Kind::StructValue(to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

fn from_struct(s: prost_types::Struct) -> serde_json::Map<String, serde_json::Value> {
    s.fields.into_iter().map(|(k, v)| (k, from_value(v))).collect()
}

/// A protobuf `Value` as JSON; numbers that are whole stay integers (`exp`, `iat`), as Go's
/// `structpb` → JSON does.
fn from_value(value: prost_types::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value.kind {
        None | Some(Kind::NullValue(_)) => J::Null,
        Some(Kind::BoolValue(b)) => J::Bool(b),
        Some(Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => J::from(n as i64),
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(n).map_or(J::Null, J::Number),
        Some(Kind::StringValue(s)) => J::String(s),
        Some(Kind::ListValue(l)) => J::Array(l.values.into_iter().map(from_value).collect()),
        Some(Kind::StructValue(s)) => J::Object(from_struct(s)),
    }
}
