//! What the ACME CA issues, and what the cache gives back: a PEM key and chain through
//! `spire_tls::acme::Issued::parse` before it is served. Never panics; anything accepted is for the
//! domain, unexpired, and renewed before it expires.
#![no_main]

use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use spire_tls::acme::Issued;

fuzz_target!(|data: &[u8]| {
    let now = SystemTime::now();
    if let Ok(issued) = Issued::parse("example.org", data, now) {
        assert!(issued.not_after > now);
        assert!(issued.renew_at() <= issued.not_after);
        assert!(!issued.certified.cert.is_empty());
    }
});
