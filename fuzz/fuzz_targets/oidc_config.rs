//! The OIDC Discovery Provider's configuration (HCL or JSON) through its decoder: never panics,
//! and a configuration it accepts is consistent (at least one domain, poll intervals set).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_oidc_discovery::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = Config::from_str(text, false) {
        assert!(!config.domains.is_empty());
        assert!(!config.source.poll_interval().is_zero());
    }
});
