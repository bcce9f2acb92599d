//! The registrar's crd-mode webhook reading an AdmissionReview of a SpiffeID: never panics; a
//! SpiffeID it accepts has both IDs in the trust domain and a namespace selector of its own
//! namespace (or is the registrar's own); its selectors and entry are built without panicking; and
//! the answer carries the request's UID.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_k8s_registrar::crd::validate::{check, decode, is_duplicate, respond};

fuzz_target!(|data: &[u8]| {
    let Ok(review) = decode(data) else { return };
    for denial in [None, Some((403, "no".to_owned()))] {
        let allowed = denial.is_none();
        let (_, _, body) = respond(&review.request, denial);
        let answer: serde_json::Value = serde_json::from_slice(&body).expect("the answer is JSON");
        assert_eq!(answer["response"]["uid"], review.request.uid.as_str());
        assert_eq!(answer["response"]["allowed"], allowed);
    }
    let Some(s) = review.object else { return };
    let selectors = s.spec.selector.selectors();
    if check(&s, "spire", "example.org").is_ok() {
        assert!(s.spec.spiffe_id.starts_with("spiffe://example.org"));
        assert!(s.spec.parent_id.starts_with("spiffe://example.org"));
        let ns = s.metadata.namespace.as_deref().unwrap_or_default();
        assert!(ns == "spire" || s.spec.selector.namespace == ns);
    }
    if let Ok(entry) = s.spec.entry() {
        assert_eq!(entry.selectors, selectors);
        assert!(!is_duplicate(&s, &[]));
    }
});
