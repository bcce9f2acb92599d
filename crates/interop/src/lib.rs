//! Interoperability tests against independent SPIFFE implementations live in `tests/`; this crate has
//! no library code of its own.
