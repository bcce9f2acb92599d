//! An external agent KeyManager (`KeyManager "<name>" { plugin_cmd = ... }`).
//!
//! The agent's key signs its CSRs and its TLS client authentication. This build's key managers hand
//! the key itself to the agent ([`spire_keymanager::KeyManager`]); a plugin only signs with keys it
//! keeps, so the agent would need a key that signs remotely. Until the identity core has one, such a
//! configuration is refused at start, naming the plugin, rather than silently replaced by a local
//! key the operator did not ask for.

use spire_plugin_host::PluginError;

use super::ExternalConfig;

/// Why an external agent KeyManager cannot be loaded, as SPIRE's catalog words a load failure.
pub fn refuse(plugin: &ExternalConfig) -> PluginError {
    PluginError::Bind {
        name: plugin.name().to_owned(),
        message: "an external KeyManager cannot hold the agent's key in this build (spire-rs signs the \
                  agent's CSRs and TLS handshakes with a local key): use KeyManager \"disk\" or \"memory\""
            .into(),
    }
}
