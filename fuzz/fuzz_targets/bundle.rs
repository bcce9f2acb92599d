//! SPIFFE bundle parsing: never panics, and a bundle that parses survives a write and a re-read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_identity::{Bundle, TrustDomain};

fuzz_target!(|data: &[u8]| {
    let td = TrustDomain::parse("example.org").expect("valid trust domain");
    if let Ok(bundle) = Bundle::from_spiffe_json(td.clone(), data) {
        let again = Bundle::from_spiffe_json(td, bundle.to_spiffe_json().as_bytes()).expect("our output parses");
        assert_eq!(again, bundle);
    }
});
