//! The server's plugins, one module per plugin type and one file per plugin, each behind a small trait.

pub mod bundlepublisher;
pub mod credentialcomposer;
pub mod external;
pub mod keymanager;
pub mod nodeattestor;
pub mod notifier;
pub mod upstreamauthority;
