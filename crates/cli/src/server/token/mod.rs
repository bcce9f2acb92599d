//! `spire-server token generate`: join tokens.

pub(crate) mod generate;
