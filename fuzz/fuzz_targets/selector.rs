//! Selector parsing: never panics, and what parses prints back as the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_identity::Selector;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(selector) = Selector::parse(text) {
        assert_eq!(selector.to_string(), text);
    }
});
