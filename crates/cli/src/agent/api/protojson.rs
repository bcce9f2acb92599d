//! The Workload API messages as SPIRE's CLI prints them in JSON: Go's protojson with `UseProtoNames`
//! and `EmitUnpopulated` (fields in declaration order, map keys sorted, bytes as padded base64,
//! `google.protobuf.Struct` as a plain object with sorted keys and JavaScript-style numbers), then
//! `cliprinter`'s `json.Encoder`, which compacts, escapes `<`, `>`, `&`, U+2028 and U+2029, and adds a
//! newline; several messages become one array.
//!
//! The Workload API types have no serde code (they are not SPIRE API types), and protojson's number
//! format is not serde_json's, so the text is written here directly.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use prost_types::value::Kind;
use prost_types::{Struct, Value};
use spire_proto::workload::{JwtBundlesResponse, JwtsvidResponse, ValidateJwtsvidResponse, X509svidResponse};

/// A JSON string literal. protojson escapes the same characters serde_json does: `"`, `\` and controls.
fn string(text: &str) -> String {
    serde_json::to_string(text).expect("strings always serialize")
}

fn bytes(data: &[u8]) -> String {
    string(&STANDARD.encode(data))
}

fn object(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}:{v}", string(k))).collect();
    format!("{{{}}}", body.join(","))
}

fn array(items: impl IntoIterator<Item = String>) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(","))
}

fn bytes_map(map: &HashMap<String, Vec<u8>>) -> String {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let body: Vec<String> = keys.into_iter().map(|k| format!("{}:{}", string(k), bytes(&map[k]))).collect();
    format!("{{{}}}", body.join(","))
}

/// `X509SVIDResponse`.
pub(crate) fn x509_svid_response(resp: &X509svidResponse) -> String {
    let svids = resp.svids.iter().map(|s| {
        object(&[
            ("spiffe_id", string(&s.spiffe_id)),
            ("x509_svid", bytes(&s.x509_svid)),
            ("x509_svid_key", bytes(&s.x509_svid_key)),
            ("bundle", bytes(&s.bundle)),
            ("hint", string(&s.hint)),
        ])
    });
    object(&[
        ("svids", array(svids)),
        ("crl", array(resp.crl.iter().map(|c| bytes(c)))),
        ("federated_bundles", bytes_map(&resp.federated_bundles)),
    ])
}

/// `JWTSVIDResponse`.
pub(crate) fn jwt_svid_response(resp: &JwtsvidResponse) -> String {
    let svids = resp
        .svids
        .iter()
        .map(|s| object(&[("spiffe_id", string(&s.spiffe_id)), ("svid", string(&s.svid)), ("hint", string(&s.hint))]));
    object(&[("svids", array(svids))])
}

/// `JWTBundlesResponse`.
pub(crate) fn jwt_bundles_response(resp: &JwtBundlesResponse) -> String {
    object(&[("bundles", bytes_map(&resp.bundles))])
}

/// `ValidateJWTSVIDResponse`; unset claims are `null`.
pub(crate) fn validate_response(resp: &ValidateJwtsvidResponse) -> String {
    let claims = resp.claims.as_ref().map_or_else(|| "null".to_owned(), structure);
    object(&[("spiffe_id", string(&resp.spiffe_id)), ("claims", claims)])
}

/// A `google.protobuf.Struct` as `protojson.Marshal` writes it (single line, no extra spaces).
pub(crate) fn structure(s: &Struct) -> String {
    let mut keys: Vec<&String> = s.fields.keys().collect();
    keys.sort();
    let body: Vec<String> = keys.into_iter().map(|k| format!("{}:{}", string(k), value(&s.fields[k]))).collect();
    format!("{{{}}}", body.join(","))
}

fn value(v: &Value) -> String {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => "null".to_owned(),
        Some(Kind::NumberValue(n)) => number(*n),
        Some(Kind::StringValue(s)) => string(s),
        Some(Kind::BoolValue(b)) => b.to_string(),
        Some(Kind::StructValue(s)) => structure(s),
        Some(Kind::ListValue(l)) => array(l.values.iter().map(value)),
    }
}

/// A double as protojson writes it: the shortest text that reads back the same, in plain notation
/// unless the magnitude is below 1e-6 or at least 1e21 (as JavaScript does), exponents written `e+21`
/// and `e-7`. Non-finite values are strings.
fn number(n: f64) -> String {
    if n.is_nan() {
        return string("NaN");
    }
    if n.is_infinite() {
        return string(if n > 0.0 { "Infinity" } else { "-Infinity" });
    }
    crate::output::go_float(n)
}

/// What `cliprinter` prints for `messages` (each already protojson): each through a Go map (keys
/// sorted, nulls dropped: [`crate::output::go_map_roundtrip`]), the one message or an array of them,
/// HTML-escaped like Go's `json.Encoder`, newline-terminated.
pub(crate) fn cli_json(messages: &[String]) -> String {
    let mut messages = messages.iter().map(|m| crate::output::go_map_roundtrip(m));
    let text = match (messages.next(), messages.len()) {
        (Some(one), 0) => one,
        (first, _) => array(first.into_iter().chain(messages)),
    };
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::ListValue;
    use spire_proto::workload::{Jwtsvid, X509svid};

    fn num(n: f64) -> Value {
        Value { kind: Some(Kind::NumberValue(n)) }
    }

    fn text(s: &str) -> Value {
        Value { kind: Some(Kind::StringValue(s.into())) }
    }

    #[test]
    fn numbers_like_protojson() {
        for (n, want) in [
            (1_704_067_200.0, "1704067200"),
            (0.0, "0"),
            (-3.0, "-3"),
            (0.1, "0.1"),
            (1.5e-7, "1.5e-7"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123_456.789, "123456.789"),
            (2.5e-300, "2.5e-300"),
        ] {
            assert_eq!(number(n), want, "{n}");
        }
        assert_eq!(number(f64::NAN), "\"NaN\"");
        assert_eq!(number(f64::NEG_INFINITY), "\"-Infinity\"");
    }

    #[test]
    fn claims_struct_sorted_and_compact() {
        // SPIRE's own test expects `Claims    : {"aud":["foo"]}`.
        let claims = Struct {
            fields: [
                ("sub".to_owned(), text("spiffe://example.org/foo")),
                ("aud".to_owned(), Value { kind: Some(Kind::ListValue(ListValue { values: vec![text("foo")] })) }),
                ("exp".to_owned(), num(1_704_070_800.0)),
                ("extra".to_owned(), Value { kind: Some(Kind::StructValue(Struct::default())) }),
                ("flag".to_owned(), Value { kind: Some(Kind::BoolValue(true)) }),
                ("none".to_owned(), Value { kind: Some(Kind::NullValue(0)) }),
            ]
            .into(),
        };
        assert_eq!(
            structure(&claims),
            r#"{"aud":["foo"],"exp":1704070800,"extra":{},"flag":true,"none":null,"sub":"spiffe://example.org/foo"}"#
        );
    }

    #[test]
    fn messages_in_field_order_then_printed_through_a_go_map() {
        let resp = X509svidResponse {
            svids: vec![X509svid {
                spiffe_id: "spiffe://example.org/foo".into(),
                x509_svid: vec![1, 2],
                x509_svid_key: vec![3],
                bundle: vec![4, 5, 6],
                hint: String::new(),
            }],
            crl: vec![],
            federated_bundles: [("spiffe://b.td".to_owned(), vec![7]), ("spiffe://a.td".to_owned(), vec![8])].into(),
        };
        assert_eq!(
            x509_svid_response(&resp),
            r#"{"svids":[{"spiffe_id":"spiffe://example.org/foo","x509_svid":"AQI=","x509_svid_key":"Aw==","bundle":"BAUG","hint":""}],"crl":[],"federated_bundles":{"spiffe://a.td":"CA==","spiffe://b.td":"Bw=="}}"#
        );
        let jwt = JwtsvidResponse {
            svids: vec![Jwtsvid { spiffe_id: "spiffe://domain1.test".into(), svid: "a.b.c".into(), hint: "h".into() }],
        };
        let bundles = JwtBundlesResponse { bundles: [("spiffe://domain1.test".to_owned(), b"{}".to_vec())].into() };
        assert_eq!(
            cli_json(&[jwt_svid_response(&jwt), jwt_bundles_response(&bundles)]),
            "[{\"svids\":[{\"hint\":\"h\",\"spiffe_id\":\"spiffe://domain1.test\",\"svid\":\"a.b.c\"}]},{\"bundles\":{\"spiffe://domain1.test\":\"e30=\"}}]\n"
        );
        assert_eq!(
            cli_json(&[validate_response(&ValidateJwtsvidResponse {
                spiffe_id: "spiffe://x/<y>".into(),
                claims: None
            })]),
            "{\"spiffe_id\":\"spiffe://x/\\u003cy\\u003e\"}\n",
            "the printer's Go map drops the null claims"
        );
    }
}
