//! The validating webhook for SpiffeIDs (`webhook_enabled`), as SPIRE v1.3.6's
//! `spiffeid_webhook.go` behind controller-runtime: IDs must be in the trust domain, only the
//! registrar's namespace may use the `cluster` and `agent_node_uid` selectors, any other SpiffeID
//! must select its own namespace, DNS names must be valid, and a new SpiffeID may not duplicate an
//! existing entry. Stricter than SPIRE: the IDs must parse and their trust domain must be the
//! registrar's exactly (not merely begin with it), and only the registrar's namespace may ask for a
//! `downstream` entry. Served on `webhook_port` with `tls.crt` and `tls.key` from `webhook_cert_dir`.

use std::sync::Arc;

use hyper::{Method, StatusCode};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use spire_identity::SpiffeId;
use spire_proto::spire::api::types::Entry;

use super::CrdError;
use super::resource::SpiffeID;
use crate::https::{self, SimpleRequest, SimpleResponse, error};
use crate::spire_api::{Entries, id_string};
use crate::webhook::admission::{ReviewError, parse_review};

/// controller-runtime's path for a validating webhook of `spiffeid.spiffe.io/v1beta1` `SpiffeID`.
pub const PATH: &str = "/validate-spiffeid-spiffe-io-v1beta1-spiffeid";

/// Checks a SpiffeID's fields (SPIRE's `validateSpiffeID`), with SPIRE's messages, and more
/// strictly than SPIRE: both IDs must parse as SPIFFE IDs of exactly `trust_domain` (SPIRE only
/// compares a string prefix, so `spiffe://example.org.evil/x` passed), and only SpiffeIDs in the
/// registrar's namespace may ask for a `downstream` entry (whose SVID is a CA of the trust domain).
pub fn check(s: &SpiffeID, registrar_namespace: &str, trust_domain: &str) -> Result<(), String> {
    in_trust_domain("parentId", &s.spec.parent_id, trust_domain)?;
    in_trust_domain("spiffeId", &s.spec.spiffe_id, trust_domain)?;
    let namespace = s.metadata.namespace.as_deref().unwrap_or_default();
    let selector = &s.spec.selector;
    if !selector.cluster.is_empty() || !selector.agent_node_uid.is_empty() {
        if namespace != registrar_namespace {
            return Err(
                "spec.Selector.Cluster and spec.Selector.AgentNodeUid can only be used by the k8s-workload-registrar"
                    .into(),
            );
        }
    } else if namespace != selector.namespace {
        return Err("spec.Selector.Namespace must match namespace of resource".into());
    }
    if s.spec.downstream && namespace != registrar_namespace {
        return Err(format!(
            "spec.downstream can only be used by the k8s-workload-registrar's namespace ({registrar_namespace}): \
             a downstream entry's SVID signs certificates for the whole trust domain"
        ));
    }
    for name in &s.spec.dns_names {
        validate_dns(name).map_err(|reason| format!("invalid DNS name {name:?}: {reason}"))?;
    }
    Ok(())
}

/// `spec.<field>` is a SPIFFE ID of exactly `trust_domain`. SPIRE's prefix check (and message)
/// comes first; what passes it must still parse and name the trust domain itself, not one that
/// only begins like it.
fn in_trust_domain(field: &str, id: &str, trust_domain: &str) -> Result<(), String> {
    let prefix = format!("spiffe://{trust_domain}");
    if !id.starts_with(&prefix) {
        return Err(format!("spec.{field} must begin with {prefix}"));
    }
    let parsed = SpiffeId::parse(id).map_err(|e| format!("spec.{field} {id:?} is not a valid SPIFFE ID: {e}"))?;
    if parsed.trust_domain().as_str() != trust_domain {
        return Err(format!(
            "spec.{field} must be in the trust domain {trust_domain:?}, but {id:?} is in {:?}",
            parsed.trust_domain().as_str()
        ));
    }
    Ok(())
}

/// SPIRE's `x509util.ValidateDNS`: labels of letters, digits and inner hyphens, at least two
/// characters each (SPIRE's pattern), at most 63, the whole at most 255.
pub fn validate_dns(name: &str) -> Result<(), String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("empty or only whitespace".into());
    }
    if name.len() > 255 {
        return Err("length exceeded".into());
    }
    for label in name.split('.') {
        let bytes = label.as_bytes();
        let alnum = |b: &u8| b.is_ascii_alphanumeric();
        if label.is_empty() {
            return Err("label is empty".into());
        }
        if label.len() > 63 {
            return Err(format!("label length exceeded: {label}"));
        }
        let shaped = bytes.len() >= 2
            && alnum(&bytes[0])
            && alnum(&bytes[bytes.len() - 1])
            && bytes.iter().all(|b| alnum(b) || *b == b'-');
        if !shaped {
            return Err(format!("label does not match regex: {label}"));
        }
    }
    Ok(())
}

/// Whether `existing` (the entries with exactly the SpiffeID's selectors) holds an entry of the
/// same SPIFFE ID that is not the SpiffeID's own.
pub fn is_duplicate(s: &SpiffeID, existing: &[Entry]) -> bool {
    let own = s.status.as_ref().and_then(|st| st.entry_id.as_deref());
    existing.iter().any(|e| id_string(&e.spiffe_id) == s.spec.spiffe_id && own != Some(e.id.as_str()))
}

/// An admission request and the SpiffeID it carries (for CREATE and UPDATE).
#[derive(Debug)]
pub struct Review {
    /// The request.
    pub request: AdmissionRequest<DynamicObject>,
    /// The object, decoded.
    pub object: Option<SpiffeID>,
}

/// Parses an AdmissionReview body and decodes its SpiffeID; a body that is not a SpiffeID review
/// is an error (controller-runtime answers it with a 400 result).
pub fn decode(body: &[u8]) -> Result<Review, ReviewError> {
    let request = parse_review(body)?;
    let object = match (&request.operation, &request.object) {
        (Operation::Create | Operation::Update, Some(object)) => {
            let value = serde_json::to_value(object).map_err(|e| ReviewError::Malformed(e.to_string()))?;
            let mut s: SpiffeID = serde_json::from_value(value).map_err(|e| ReviewError::Malformed(e.to_string()))?;
            if s.metadata.namespace.is_none() {
                s.metadata.namespace = request.namespace.clone();
            }
            Some(s)
        }
        (Operation::Create | Operation::Update, None) => {
            return Err(ReviewError::Malformed("there is no content to decode".into()));
        }
        _ => None,
    };
    Ok(Review { request, object })
}

/// The webhook.
#[derive(Debug, Clone)]
pub struct Validator {
    entries: Entries,
    namespace: String,
    trust_domain: String,
}

/// The HTTP answer to `request`: allowed, or denied with `(code, message)`.
pub fn respond(request: &AdmissionRequest<DynamicObject>, denial: Option<(u16, String)>) -> SimpleResponse {
    let mut response = AdmissionResponse::from(request);
    if let Some((code, message)) = denial {
        response = response.deny(&message);
        response.result.code = code;
        // controller-runtime puts the validator's error in `reason`; the API server shows it.
        response.result.reason = message;
    }
    let body = serde_json::to_vec(&response.into_review()).expect("an AdmissionReview serializes");
    (StatusCode::OK, "application/json", body)
}

impl Validator {
    /// A validator for SpiffeIDs of `trust_domain`, the registrar running in `namespace`.
    pub fn new(entries: Entries, namespace: &str, trust_domain: &str) -> Self {
        Self { entries, namespace: namespace.to_owned(), trust_domain: trust_domain.to_owned() }
    }

    /// Answers one HTTP request.
    pub async fn handle(&self, request: SimpleRequest) -> SimpleResponse {
        if request.path != PATH {
            return error(StatusCode::NOT_FOUND, "404 page not found");
        }
        if request.method != Method::POST {
            return error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        }
        if request.content_type.as_deref() != Some("application/json") {
            let got = request.content_type.unwrap_or_default();
            return error(StatusCode::BAD_REQUEST, &format!("contentType={got}, expected application/json"));
        }
        let review = match decode(&request.body) {
            Ok(review) => review,
            Err(e @ ReviewError::Unsupported(_)) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
            Err(e) => match parse_review(&request.body) {
                Ok(request) => return respond(&request, Some((400, e.to_string()))),
                Err(_) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
            },
        };
        let denial = match (&review.request.operation, &review.object) {
            (Operation::Create, Some(s)) => self.validate_create(s).await.err(),
            (Operation::Update, Some(s)) => check(s, &self.namespace, &self.trust_domain).err(),
            _ => None,
        };
        if let Some(message) = &denial {
            tracing::info!(name = %review.request.name, namespace = ?review.request.namespace, reason = %message, "Denied SpiffeID");
        }
        respond(&review.request, denial.map(|m| (403, m)))
    }

    async fn validate_create(&self, s: &SpiffeID) -> Result<(), String> {
        check(s, &self.namespace, &self.trust_domain)?;
        let existing = self.entries.list_by_selectors(s.spec.selector.selectors()).await.map_err(|e| e.to_string())?;
        if is_duplicate(s, &existing) {
            tracing::info!(spiffe_id = %s.spec.spiffe_id, name = s.metadata.name.as_deref().unwrap_or_default(), "Duplicate detected");
            return Err("Duplicate detected".into());
        }
        Ok(())
    }

    /// Serves the webhook on `port` with the certificate in `cert_dir` until the listener fails.
    pub async fn serve(self, cert_dir: &str, port: u16) -> Result<(), CrdError> {
        let dir = std::path::Path::new(cert_dir);
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        let tls = crate::webhook::tls::server_config(&cert.to_string_lossy(), &key.to_string_lossy(), None)?;
        let listener = https::bind(&format!(":{port}")).await?;
        tracing::info!(port, path = PATH, "Serving the SpiffeID validating webhook");
        let validator = Arc::new(self);
        https::serve(listener, Some(tls), move |request| {
            let validator = Arc::clone(&validator);
            async move { validator.handle(request).await }
        })
        .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use spire_proto::spire::api::types::Spiffeid;

    use super::*;
    use crate::crd::resource::{SpiffeIdSelector, SpiffeIdSpec, SpiffeIdStatus};

    fn spiffeid(namespace: &str, selector: SpiffeIdSelector) -> SpiffeID {
        let mut s = SpiffeID::new(
            "x",
            SpiffeIdSpec {
                parent_id: "spiffe://example.org/parent".into(),
                spiffe_id: "spiffe://example.org/workload".into(),
                selector,
                ..Default::default()
            },
        );
        s.metadata.namespace = Some(namespace.into());
        s
    }

    fn ns(namespace: &str) -> SpiffeIdSelector {
        SpiffeIdSelector { namespace: namespace.into(), ..Default::default() }
    }

    #[test]
    fn spires_rules_and_messages() {
        assert_eq!(check(&spiffeid("prod", ns("prod")), "spire", "example.org"), Ok(()));
        let mut s = spiffeid("prod", ns("prod"));
        s.spec.parent_id = "spiffe://other.org/p".into();
        assert_eq!(
            check(&s, "spire", "example.org").unwrap_err(),
            "spec.parentId must begin with spiffe://example.org"
        );
        let mut s = spiffeid("prod", ns("prod"));
        s.spec.spiffe_id = "spiffe://other.org/w".into();
        assert_eq!(
            check(&s, "spire", "example.org").unwrap_err(),
            "spec.spiffeId must begin with spiffe://example.org"
        );
        assert_eq!(
            check(&spiffeid("prod", ns("other")), "spire", "example.org").unwrap_err(),
            "spec.Selector.Namespace must match namespace of resource"
        );
        let cluster = SpiffeIdSelector { cluster: "c".into(), ..Default::default() };
        assert_eq!(
            check(&spiffeid("prod", cluster.clone()), "spire", "example.org").unwrap_err(),
            "spec.Selector.Cluster and spec.Selector.AgentNodeUid can only be used by the k8s-workload-registrar"
        );
        assert_eq!(check(&spiffeid("spire", cluster), "spire", "example.org"), Ok(()));
        let mut s = spiffeid("prod", ns("prod"));
        s.spec.dns_names = vec!["ok.example".into(), "bad_name".into()];
        assert_eq!(
            check(&s, "spire", "example.org").unwrap_err(),
            "invalid DNS name \"bad_name\": label does not match regex: bad_name"
        );
    }

    /// `check` with `id` as the SpiffeID's spiffeId (`parent == false`) or parentId.
    fn check_id(parent: bool, id: &str) -> Result<(), String> {
        let mut s = spiffeid("prod", ns("prod"));
        if parent {
            s.spec.parent_id = id.into();
        } else {
            s.spec.spiffe_id = id.into();
        }
        check(&s, "spire", "example.org")
    }

    #[test]
    fn ids_must_be_exactly_in_the_trust_domain() {
        for parent in [false, true] {
            let field = if parent { "parentId" } else { "spiffeId" };
            for good in ["spiffe://example.org/w", "spiffe://example.org/ns/prod/sa/Web-1_x.y"] {
                assert_eq!(check_id(parent, good), Ok(()), "{field} {good}");
            }
            // What SPIRE's prefix check refuses, with SPIRE's message.
            for other in [
                "spiffe://other.org/w",
                "spiffe://example.co/w",
                "spiffe://EXAMPLE.ORG/w",
                "spiffe://Example.org/w",
                "SPIFFE://example.org/w",
                "example.org/w",
                "//example.org/w",
                "spiffe:/example.org/w",
                " spiffe://example.org/w",
                "",
            ] {
                assert_eq!(
                    check_id(parent, other).unwrap_err(),
                    format!("spec.{field} must begin with spiffe://example.org"),
                    "{field} {other:?}"
                );
            }
            // Look-alikes that begin with the prefix but name another trust domain.
            for look_alike in [
                "spiffe://example.org.evil/w",
                "spiffe://example.orgevil/w",
                "spiffe://example.org-evil.com/w",
                "spiffe://example.org_x/w",
                "spiffe://example.org.",
            ] {
                let err = check_id(parent, look_alike).unwrap_err();
                assert!(
                    err.starts_with(&format!("spec.{field} must be in the trust domain \"example.org\", but")),
                    "{field} {look_alike}: {err}"
                );
            }
            // Begin with the prefix but are not SPIFFE IDs (userinfo, port, query, uppercase or
            // odd characters in the trust domain, bad paths).
            for malformed in [
                "spiffe://example.org@evil.com/w",
                "spiffe://example.org:443/w",
                "spiffe://example.org?x=/w",
                "spiffe://example.org#/w",
                "spiffe://example.org.EVIL/w",
                "spiffe://example.org%2eevil/w",
                "spiffe://example.org/w/",
                "spiffe://example.org//w",
                "spiffe://example.org/../w",
                "spiffe://example.org/w x",
                "spiffe://example.org/w\u{0}",
            ] {
                let err = check_id(parent, malformed).unwrap_err();
                assert!(err.starts_with(&format!("spec.{field} ")), "{field} {malformed:?}: {err}");
                assert!(err.contains("is not a valid SPIFFE ID"), "{field} {malformed:?}: {err}");
            }
        }
    }

    #[test]
    fn downstream_only_in_the_registrars_namespace() {
        let mut tenant = spiffeid("prod", ns("prod"));
        tenant.spec.downstream = true;
        let err = check(&tenant, "spire", "example.org").unwrap_err();
        assert!(err.starts_with("spec.downstream can only be used by the k8s-workload-registrar's namespace (spire)"));
        // Selecting the registrar's namespace from elsewhere does not help.
        let mut posing = spiffeid("prod", ns("spire"));
        posing.spec.downstream = true;
        assert!(check(&posing, "spire", "example.org").is_err());
        // A namespace named like the registrar's is another namespace.
        let mut look_alike = spiffeid("spire-tenant", ns("spire-tenant"));
        look_alike.spec.downstream = true;
        assert!(check(&look_alike, "spire", "example.org").unwrap_err().starts_with("spec.downstream"));
        // The registrar's own namespace may.
        let mut own = spiffeid("spire", ns("spire"));
        own.spec.downstream = true;
        assert_eq!(check(&own, "spire", "example.org"), Ok(()));
        // Not downstream: any namespace, as before.
        tenant.spec.downstream = false;
        assert_eq!(check(&tenant, "spire", "example.org"), Ok(()));
    }

    #[test]
    fn dns_names_as_spire_validates_them() {
        for good in ["web.prod.svc", "a1", "x-y.z9"] {
            assert_eq!(validate_dns(good), Ok(()), "{good}");
        }
        for bad in ["", " ", "a..b", "-ab", "ab-", "a", "é.org", &"a".repeat(64), &"ab.".repeat(90)] {
            assert!(validate_dns(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn duplicates_are_other_entries_of_the_same_id() {
        let entry = |id: &str, path: &str| Entry {
            id: id.into(),
            spiffe_id: Some(Spiffeid { trust_domain: "example.org".into(), path: path.into() }),
            ..Default::default()
        };
        let mut s = spiffeid("prod", ns("prod"));
        assert!(is_duplicate(&s, &[entry("e1", "/workload")]));
        assert!(!is_duplicate(&s, &[entry("e1", "/other")]));
        s.status = Some(SpiffeIdStatus { entry_id: Some("e1".into()) });
        assert!(!is_duplicate(&s, &[entry("e1", "/workload")]));
        assert!(is_duplicate(&s, &[entry("e2", "/workload")]));
    }

    fn review(operation: &str, object: &str) -> String {
        format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u-1",
            "kind":{{"group":"spiffeid.spiffe.io","version":"v1beta1","kind":"SpiffeID"}},
            "resource":{{"group":"spiffeid.spiffe.io","version":"v1beta1","resource":"spiffeids"}},
            "name":"x","namespace":"prod","operation":"{operation}","userInfo":{{"username":"admin"}},
            "object":{object}}}}}"#
        )
    }

    #[test]
    fn reviews_decode_to_spiffeids() {
        let object = r#"{"apiVersion":"spiffeid.spiffe.io/v1beta1","kind":"SpiffeID","metadata":{"name":"x"},
            "spec":{"parentId":"p","spiffeId":"s","selector":{"namespace":"prod"}}}"#;
        let r = decode(review("CREATE", object).as_bytes()).unwrap();
        let s = r.object.unwrap();
        assert_eq!(s.metadata.namespace.as_deref(), Some("prod"), "the request's namespace fills in");
        assert_eq!(s.spec.selector.namespace, "prod");
        assert!(decode(review("DELETE", "null").as_bytes()).unwrap().object.is_none());
        assert!(decode(review("CREATE", "null").as_bytes()).is_err());
        assert!(decode(review("CREATE", r#"{"spec":{"dnsNames":5}}"#).as_bytes()).is_err());
        assert!(decode(b"nonsense").is_err());
    }

    #[test]
    fn denials_carry_code_and_message() {
        let r = decode(review("DELETE", "null").as_bytes()).unwrap();
        let (status, _, body) = respond(&r.request, Some((403, "no".into())));
        assert_eq!(status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["response"]["allowed"], false);
        assert_eq!(v["response"]["uid"], "u-1");
        assert_eq!(v["response"]["status"]["code"], 403);
        assert_eq!(v["response"]["status"]["message"], "no");
    }
}
