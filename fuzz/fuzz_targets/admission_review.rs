//! The registrar's webhook mode reading an AdmissionReview from the API server: never panics; a
//! review it accepts is answered in its own version with its own UID, and a created pod's workload
//! ID, if any, is a valid SPIFFE ID in the trust domain.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_identity::TrustDomain;
use spire_k8s_registrar::config::IdSource;
use spire_k8s_registrar::webhook::admission::{PodEvent, allow, parse_review, pod_event};
use spire_k8s_registrar::workload_id::{WorkloadIds, federates_with};

fuzz_target!(|data: &[u8]| {
    let Ok(request) = parse_review(data) else { return };
    let answer: serde_json::Value = serde_json::from_slice(&allow(&request)).expect("the answer is JSON");
    assert_eq!(answer["response"]["uid"], request.uid.as_str());
    assert_eq!(answer["response"]["allowed"], true);
    let td = TrustDomain::parse("example.org").unwrap();
    if let Ok(PodEvent::Create(pod)) = pod_event(&request) {
        for source in [IdSource::ServiceAccount, IdSource::Label("app".into()), IdSource::Annotation("id".into())] {
            let ids = WorkloadIds::new(td.clone(), source, vec!["kube-system".into()]);
            if let Ok(Some(id)) = ids.for_pod(&pod) {
                assert!(id.is_member_of(&td), "{id}");
            }
        }
        let _ = federates_with(&pod);
    }
});
