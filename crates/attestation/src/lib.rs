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
