//! KeyManager plugins ("disk", "memory"), shared with the agent in `spire-keymanager`.

pub use spire_keymanager::*;
