//! `spire-server debug getinfo`.

pub(crate) mod getinfo;
