//! An external WorkloadAttestor: the SDK's `Attest(pid)` answers selector values; the host types
//! them with the plugin's name ([`crate::workload_attestor`]), as for the built-ins. The plugin's
//! errors reach the log as SPIRE's do: `workload attestor "<name>" failed: rpc error: code = ...
//! desc = workloadattestor(<name>): ...`.

use async_trait::async_trait;
use spire_plugin_host::go_status;
use spire_proto::spire::plugin::agent::workloadattestor::v1 as workloadv1;
use tonic::transport::Channel;
use workloadv1::workload_attestor_client::WorkloadAttestorClient;

use crate::peer::Process;
use crate::workload_attestor::{AttestError, WorkloadAttestor};

/// The plugin type, in the facade's prefix.
const PLUGIN_TYPE: &str = "WorkloadAttestor";

/// A workload attestor served by an external plugin.
#[derive(Debug, Clone)]
pub struct ExternalWorkloadAttestor {
    name: String,
    client: WorkloadAttestorClient<Channel>,
}

impl ExternalWorkloadAttestor {
    /// The facade of the plugin `name` reached over `channel` (from [`super::ExternalPlugins::start`]).
    pub fn new(name: impl Into<String>, channel: Channel) -> Self {
        Self { name: name.into(), client: WorkloadAttestorClient::new(channel) }
    }
}

/// A failed `Attest`, as SPIRE's facade reports it.
#[derive(Debug, thiserror::Error)]
#[error("{}", go_status(.0))]
pub struct PluginStatus(pub tonic::Status);

#[async_trait]
impl WorkloadAttestor for ExternalWorkloadAttestor {
    fn name(&self) -> &str {
        &self.name
    }

    async fn attest(&self, process: Process<'_>) -> Result<Vec<String>, AttestError> {
        // The plugin reads the process by its PID: a caller whose PID was reused meanwhile is caught
        // by the host's check after every attestor is done.
        let request = workloadv1::AttestRequest { pid: process.pid() };
        match self.client.clone().attest(request).await {
            Ok(response) => Ok(response.into_inner().selector_values),
            Err(status) => Err(AttestError::plugin(PluginStatus(spire_plugin_host::facade_status(
                PLUGIN_TYPE,
                &self.name,
                &status,
            )))),
        }
    }
}
