//! `aws_iid`: the agent sends the EC2 instance identity document and AWS's signatures of it, as it
//! read them from the instance metadata service; the server checks a signature against AWS's
//! certificate for the document's region. No challenge follows.
//!
//! The payload is SPIRE's `aws.IIDAttestationData`: `{"document": ..., "signature": ...,
//! "rsa2048": ...}`, where `signature` is the base64 RSA-1024 PKCS#1 v1.5 signature
//! (`instance-identity/signature`) and `rsa2048` the PKCS#7 signed data without its PEM armour
//! (`instance-identity/rsa2048`), which [`pkcs7`] reads. Field names are matched as Go's
//! `encoding/json` matches them (exact first, then case-insensitively) and `null` reads as empty,
//! so that what SPIRE's server accepts, this one reads the same way.

pub mod pkcs7;

use serde::Serialize;
use serde_json::{Map, Value};

/// The attestation type and plugin name.
pub const PLUGIN_NAME: &str = "aws_iid";

/// The payload (SPIRE's `aws.IIDAttestationData`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AttestationData {
    /// The instance identity document, verbatim (JSON text).
    pub document: String,
    /// The RSA-1024 signature of the document, base64.
    pub signature: String,
    /// The RSA-2048 PKCS#7 signature, base64 without PEM header and footer.
    #[serde(rename = "rsa2048")]
    pub signature_rsa2048: String,
}

/// The fields of the instance identity document the attestor uses (Go SDK's
/// `imds.InstanceIdentityDocument`; the others are type-checked as Go would and dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceIdentityDocument {
    /// `accountId`.
    pub account_id: String,
    /// `region`.
    pub region: String,
    /// `availabilityZone`.
    pub availability_zone: String,
    /// `instanceId`.
    pub instance_id: String,
    /// `imageId`.
    pub image_id: String,
}

/// Why a payload or document does not read, in Go's `encoding/json` terms where they differ.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not JSON.
    #[error("{0}")]
    Syntax(String),
    /// JSON, but not an object (Go: `json: cannot unmarshal array into Go value of type ...`).
    #[error("json: cannot unmarshal {found} into Go value of type {go_type}")]
    NotObject {
        /// The JSON kind found.
        found: &'static str,
        /// Go's type name.
        go_type: &'static str,
    },
    /// A field of the wrong JSON kind.
    #[error("json: cannot unmarshal {found} into Go struct field {go_type}.{field} of type {want}")]
    FieldType {
        /// The JSON kind found.
        found: &'static str,
        /// Go's struct name.
        go_type: &'static str,
        /// The field's JSON name.
        field: &'static str,
        /// Go's field type.
        want: &'static str,
    },
}

impl AttestationData {
    /// The payload bytes.
    pub fn to_payload(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("three strings always serialize")
    }

    /// Reads a payload; absent or `null` fields are empty, as Go leaves them.
    pub fn from_payload(payload: &[u8]) -> Result<Self, JsonError> {
        const GO_TYPE: &str = "aws.IIDAttestationData";
        let object = object(payload, GO_TYPE)?;
        let field = |name: &'static str| go_string(&object, GO_TYPE, name);
        Ok(Self { document: field("document")?, signature: field("signature")?, signature_rsa2048: field("rsa2048")? })
    }
}

impl InstanceIdentityDocument {
    /// Reads a document; like Go, absent or `null` fields are empty and unknown ones ignored.
    pub fn parse(document: &[u8]) -> Result<Self, JsonError> {
        const GO_TYPE: &str = "imds.InstanceIdentityDocument";
        let object = object(document, GO_TYPE)?;
        let field = |name: &'static str| go_string(&object, GO_TYPE, name);
        for name in
            ["availabilityZone", "privateIp", "version", "instanceType", "kernelId", "ramdiskId", "architecture"]
        {
            field(name)?;
        }
        for name in ["devpayProductCodes", "marketplaceProductCodes", "billingProducts"] {
            go_string_list(&object, GO_TYPE, name)?;
        }
        // A time.Time: Go wants an RFC 3339 string (or null).
        if let Some(v) = go_field(&object, "pendingTime").filter(|v| !v.is_null() && !v.is_string()) {
            return Err(type_error(v, GO_TYPE, "pendingTime", "time.Time"));
        }
        Ok(Self {
            account_id: field("accountId")?,
            region: field("region")?,
            availability_zone: field("availabilityZone")?,
            instance_id: field("instanceId")?,
            image_id: field("imageId")?,
        })
    }
}

fn object(bytes: &[u8], go_type: &'static str) -> Result<Map<String, Value>, JsonError> {
    match serde_json::from_slice::<Value>(bytes).map_err(|e| JsonError::Syntax(e.to_string()))? {
        Value::Object(map) => Ok(map),
        // Go leaves the struct at its zero value for a JSON null.
        Value::Null => Ok(Map::new()),
        other => Err(JsonError::NotObject { found: kind(&other), go_type }),
    }
}

/// The value of field `name` as Go's decoder picks it: the exact key, else one equal to it
/// ignoring case.
fn go_field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| object.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

fn go_string(object: &Map<String, Value>, go_type: &'static str, name: &'static str) -> Result<String, JsonError> {
    match go_field(object, name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(type_error(other, go_type, name, "string")),
    }
}

fn go_string_list(object: &Map<String, Value>, go_type: &'static str, name: &'static str) -> Result<(), JsonError> {
    match go_field(object, name) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) => match items.iter().find(|v| !v.is_string() && !v.is_null()) {
            None => Ok(()),
            Some(bad) => Err(type_error(bad, go_type, name, "string")),
        },
        Some(other) => Err(type_error(other, go_type, name, "[]string")),
    }
}

fn type_error(v: &Value, go_type: &'static str, field: &'static str, want: &'static str) -> JsonError {
    JsonError::FieldType { found: kind(v), go_type, field, want }
}

/// Go's name for a JSON value's kind in unmarshal errors.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{
  "accountId" : "123456789012",
  "architecture" : "x86_64",
  "availabilityZone" : "us-east-1a",
  "billingProducts" : null,
  "devpayProductCodes" : null,
  "marketplaceProductCodes" : null,
  "imageId" : "ami-12345678",
  "instanceId" : "i-1234567890abcdef0",
  "instanceType" : "t2.micro",
  "kernelId" : null,
  "pendingTime" : "2016-11-19T16:32:11Z",
  "privateIp" : "10.1.2.3",
  "ramdiskId" : null,
  "region" : "us-east-1",
  "version" : "2017-09-30"
}"#;

    #[test]
    fn payload_round_trip_with_spire_field_names() {
        let d =
            AttestationData { document: "{}".into(), signature: "c2ln".into(), signature_rsa2048: "cGtjczc=".into() };
        assert_eq!(
            String::from_utf8(d.to_payload()).unwrap(),
            r#"{"document":"{}","signature":"c2ln","rsa2048":"cGtjczc="}"#
        );
        assert_eq!(AttestationData::from_payload(&d.to_payload()).unwrap(), d);
    }

    #[test]
    fn payload_reads_as_go_does() {
        let d = AttestationData::from_payload(br#"{"Document":"x","RSA2048":null,"extra":1}"#).unwrap();
        assert_eq!(d.document, "x");
        assert_eq!(d.signature_rsa2048, "");
        assert_eq!(AttestationData::from_payload(b"null").unwrap(), AttestationData::default());
        assert_eq!(
            AttestationData::from_payload(b"[]").unwrap_err().to_string(),
            "json: cannot unmarshal array into Go value of type aws.IIDAttestationData"
        );
        assert_eq!(
            AttestationData::from_payload(br#"{"document":1}"#).unwrap_err().to_string(),
            "json: cannot unmarshal number into Go struct field aws.IIDAttestationData.document of type string"
        );
        assert!(matches!(AttestationData::from_payload(b"{").unwrap_err(), JsonError::Syntax(_)));
    }

    #[test]
    fn document_fields() {
        let doc = InstanceIdentityDocument::parse(DOC.as_bytes()).unwrap();
        assert_eq!(doc.account_id, "123456789012");
        assert_eq!(doc.region, "us-east-1");
        assert_eq!(doc.availability_zone, "us-east-1a");
        assert_eq!(doc.instance_id, "i-1234567890abcdef0");
        assert_eq!(doc.image_id, "ami-12345678");
        let err = InstanceIdentityDocument::parse(br#"{"pendingTime": 3}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "json: cannot unmarshal number into Go struct field imds.InstanceIdentityDocument.pendingTime of type time.Time"
        );
        assert!(InstanceIdentityDocument::parse(br#"{"billingProducts": "x"}"#).is_err());
    }
}
