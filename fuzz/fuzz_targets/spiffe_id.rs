//! SPIFFE ID and trust domain parsing: never panics, and what parses prints back as the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_identity::{SpiffeId, TrustDomain};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(id) = SpiffeId::parse(text) {
        assert_eq!(id.to_string(), text);
        assert_eq!(SpiffeId::parse(&id.to_string()).as_ref(), Ok(&id));
    }
    if let Ok(td) = TrustDomain::parse(text) {
        assert_eq!(TrustDomain::parse(&td.id_string()).as_ref(), Ok(&td));
    }
});
