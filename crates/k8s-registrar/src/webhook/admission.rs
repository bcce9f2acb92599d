//! Reading an AdmissionReview (admission.k8s.io v1 or v1beta1) and answering it, as SPIRE's
//! registrar does: `POST /validate` with `application/json`, pods only, never a denial.

use hyper::{Method, StatusCode};
use k8s_openapi::api::core::v1::Pod;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};

use crate::https::{SimpleRequest, SimpleResponse, error};

/// What an admission request asks of the registrar.
#[derive(Debug, Clone, PartialEq)]
pub enum PodEvent {
    /// A pod is being created: register it.
    Create(Box<Pod>),
    /// A pod is being deleted: remove its entries.
    Delete {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Anything else (another kind, another operation): admitted, nothing done.
    Ignore(String),
}

/// Why a body is not an AdmissionReview we can answer.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// Not JSON, or not shaped as an AdmissionReview.
    #[error("Malformed JSON body: {0}")]
    Malformed(String),
    /// An AdmissionReview of an unknown version.
    #[error("Unsupported group version kind: {0}")]
    Unsupported(String),
}

/// Parses an AdmissionReview body into its request.
pub fn parse_review(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, ReviewError> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| ReviewError::Malformed(e.to_string()))?;
    let gvk = format!("{}, Kind={}", review.types.api_version, review.types.kind);
    let known = matches!(review.types.api_version.as_str(), "admission.k8s.io/v1" | "admission.k8s.io/v1beta1");
    if !known || review.types.kind != "AdmissionReview" {
        return Err(ReviewError::Unsupported(gvk));
    }
    review.try_into().map_err(|_| ReviewError::Malformed("the AdmissionReview has no request".into()))
}

/// What `request` asks for, with pods decoded.
pub fn pod_event(request: &AdmissionRequest<DynamicObject>) -> Result<PodEvent, ReviewError> {
    let kind = &request.kind;
    if !(kind.group.is_empty() && kind.version == "v1" && kind.kind == "Pod") {
        return Ok(PodEvent::Ignore(format!("unhandled object {}/{} {}", kind.group, kind.version, kind.kind)));
    }
    let namespace = request.namespace.clone().unwrap_or_default();
    match request.operation {
        Operation::Create => {
            let object = request
                .object
                .as_ref()
                .ok_or_else(|| ReviewError::Malformed("CREATE request without its object".into()))?;
            let value = serde_json::to_value(object).map_err(|e| ReviewError::Malformed(e.to_string()))?;
            let mut pod: Pod = serde_json::from_value(value)
                .map_err(|e| ReviewError::Malformed(format!("unable to unmarshal v1/Pod object: {e}")))?;
            // On CREATE the object may not carry its namespace yet; the request does.
            if pod.metadata.namespace.is_none() {
                pod.metadata.namespace = Some(namespace);
            }
            if pod.metadata.name.is_none() && !request.name.is_empty() {
                pod.metadata.name = Some(request.name.clone());
            }
            Ok(PodEvent::Create(Box::new(pod)))
        }
        Operation::Delete => Ok(PodEvent::Delete { namespace, name: request.name.clone() }),
        ref other => Ok(PodEvent::Ignore(format!("unhandled pod operation {other:?}"))),
    }
}

/// The review answering `request`: allowed, with its UID, in the request's API version.
pub fn allow(request: &AdmissionRequest<DynamicObject>) -> Vec<u8> {
    let review = AdmissionResponse::from(request).into_review();
    serde_json::to_vec(&review).expect("an AdmissionReview serializes")
}

/// Checks what SPIRE's handler checks before reading the body.
pub fn check_http(request: &SimpleRequest) -> Result<(), SimpleResponse> {
    if request.path != "/validate" {
        return Err(error(StatusCode::NOT_FOUND, "Not found"));
    }
    if request.method != Method::POST {
        return Err(error(StatusCode::METHOD_NOT_ALLOWED, "Expected POST"));
    }
    if request.content_type.as_deref() != Some("application/json") {
        return Err(error(StatusCode::BAD_REQUEST, "Expected JSON content"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(version: &str, operation: &str, object: &str) -> String {
        format!(
            r#"{{"apiVersion":"admission.k8s.io/{version}","kind":"AdmissionReview","request":{{"uid":"u-1",
            "kind":{{"group":"","version":"v1","kind":"Pod"}},"resource":{{"group":"","version":"v1","resource":"pods"}},
            "name":"web-1","namespace":"prod","operation":"{operation}","userInfo":{{"username":"admin"}},
            "object":{object},"oldObject":null}}}}"#
        )
    }

    const POD: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"prod"},
        "spec":{"serviceAccountName":"blog","containers":[{"name":"c","image":"i"}]}}"#;

    #[test]
    fn create_reviews_carry_the_pod() {
        for version in ["v1", "v1beta1"] {
            let request = parse_review(review(version, "CREATE", POD).as_bytes()).unwrap();
            let PodEvent::Create(pod) = pod_event(&request).unwrap() else { panic!("not a create") };
            assert_eq!(pod.spec.unwrap().service_account_name.as_deref(), Some("blog"));
            let answer: serde_json::Value = serde_json::from_slice(&allow(&request)).unwrap();
            assert_eq!(answer["apiVersion"], format!("admission.k8s.io/{version}"));
            assert_eq!(answer["response"]["uid"], "u-1");
            assert_eq!(answer["response"]["allowed"], true);
        }
    }

    #[test]
    fn delete_reviews_name_the_pod() {
        let request = parse_review(review("v1", "DELETE", "null").as_bytes()).unwrap();
        assert_eq!(pod_event(&request).unwrap(), PodEvent::Delete { namespace: "prod".into(), name: "web-1".into() });
    }

    #[test]
    fn other_operations_and_kinds_are_ignored() {
        let request = parse_review(review("v1", "UPDATE", POD).as_bytes()).unwrap();
        assert!(matches!(pod_event(&request).unwrap(), PodEvent::Ignore(_)));
        let body = review("v1", "CREATE", POD).replace(r#""kind":"Pod"}"#, r#""kind":"Service"}"#);
        assert!(matches!(pod_event(&parse_review(body.as_bytes()).unwrap()).unwrap(), PodEvent::Ignore(_)));
    }

    #[test]
    fn malformed_bodies_are_refused_with_the_reason() {
        assert!(matches!(parse_review(b"{"), Err(ReviewError::Malformed(_))));
        assert!(matches!(parse_review(br#"{"apiVersion":"v1","kind":"Pod"}"#), Err(ReviewError::Unsupported(_))));
        let no_request = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#;
        assert!(matches!(parse_review(no_request), Err(ReviewError::Malformed(_))));
        let bad_pod = review("v1", "CREATE", r#"{"metadata":{"name":5}}"#);
        let request = parse_review(bad_pod.as_bytes());
        assert!(request.is_err() || pod_event(&request.unwrap()).is_err());
    }
}
