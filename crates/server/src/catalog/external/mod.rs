//! External plugins (`plugin_cmd`): spire-plugin-sdk plugins run by `spire-plugin-host`, each behind
//! the same trait as the built-in plugins of its type, so the rest of the server cannot tell them
//! apart.
//!
//! One module per plugin type (the facade translating our trait to the SDK's service, with SPIRE's
//! `<type>(<name>): ` prefix on the plugin's errors), and [`host_services`] for what plugins may call
//! back. [`ExternalPlugins`] (spire-plugin-host's, shared with the agent) owns the processes;
//! shutting the server down stops them.

pub mod bundle;
pub mod bundlepublisher;
pub mod credentialcomposer;
pub mod host_services;
pub mod nodeattestor;
pub mod notifier;
pub mod upstreamauthority;

pub use spire_plugin_host::{ExternalConfig, ExternalPlugins, facade_status};

/// The SDK service a server plugin of `plugin_type` must serve; `None` for types the server does
/// not run as external plugins.
pub fn service_of(plugin_type: &str) -> Option<&'static str> {
    Some(match plugin_type {
        "KeyManager" => spire_plugin_host::keymanager::SERVER_SERVICE,
        "UpstreamAuthority" => upstreamauthority::SERVICE,
        "NodeAttestor" => nodeattestor::SERVICE,
        "Notifier" => notifier::SERVICE,
        "BundlePublisher" => bundlepublisher::SERVICE,
        "CredentialComposer" => credentialcomposer::SERVICE,
        _ => return None,
    })
}
