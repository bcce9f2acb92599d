//! The registrar's crd-mode webhook reading an AdmissionReview of a SpiffeID: never panics; a
//! SpiffeID it accepts has both IDs parsing as SPIFFE IDs of exactly the trust domain (not one
//! that merely begins like it), a namespace selector of its own namespace (or is the registrar's
//! own), and is downstream only in the registrar's namespace; its selectors and entry are built without panicking; and
//! the answer carries the request's UID.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_identity::SpiffeId;
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
        for id in [&s.spec.spiffe_id, &s.spec.parent_id] {
            let parsed = SpiffeId::parse(id).expect("an accepted ID parses");
            assert_eq!(parsed.trust_domain().as_str(), "example.org", "{id}");
        }
        let ns = s.metadata.namespace.as_deref().unwrap_or_default();
        assert!(ns == "spire" || s.spec.selector.namespace == ns);
        assert!(!s.spec.downstream || ns == "spire");
    }
    if let Ok(entry) = s.spec.entry() {
        assert_eq!(entry.selectors, selectors);
        assert!(!is_duplicate(&s, &[]));
    }
});
