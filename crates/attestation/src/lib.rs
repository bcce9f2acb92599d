//! What a node attestor's agent half sends its server half, once for both, as SPIRE keeps it in
//! `pkg/common/plugin/<name>`: the attestation payload (`AttestationData.payload`) and, for
//! challenge-response attestors, the challenge and response bodies. The agent and server plugins
//! depend on this crate, never on each other, and a wire change shows up as a change here.

pub mod aws_iid;
pub mod azure_msi;
pub mod gcp_iit;
mod go_bytes;
pub mod http_challenge;
pub mod k8s_psat;
pub mod sshpop;
pub mod tpm_devid;
pub mod x509pop;

/// The NodeAttestor plugins both halves of spire-rs build in (SPIRE v1.13.3's set), as the server's
/// and the agent's unknown-plugin errors list them.
pub const NODE_ATTESTORS: &[&str] =
    &["join_token", "aws_iid", "azure_msi", "gcp_iit", "http_challenge", "k8s_psat", "sshpop", "tpm_devid", "x509pop"];
