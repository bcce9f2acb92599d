//! `spire-server x509 mint`.

pub(crate) mod mint;
