//! `spire-server jwt mint`.

pub(crate) mod mint;
