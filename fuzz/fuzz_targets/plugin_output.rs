//! What an external plugin prints: its go-plugin handshake line on stdout and its hclog lines on
//! stderr, both read by the host before anything else is known about the plugin. Never panics; an
//! accepted handshake names a Unix socket or TCP address and gRPC; a log line keeps its message.
//!
//! Input: the first line is read as a handshake, every line as a log line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_plugin_host::{handshake, logs};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(first) = text.lines().next()
        && let Ok(address) = handshake::parse(first)
    {
        assert!(first.contains("|grpc"), "accepted a non-gRPC handshake: {first:?}");
        match address {
            handshake::Address::Unix(path) | handshake::Address::Tcp(path) => assert!(first.contains(&path)),
        }
    }
    for line in text.lines() {
        let parsed = logs::parse(line);
        if parsed.level.is_none() {
            assert_eq!(parsed.message, line.trim_end());
        }
    }
});
