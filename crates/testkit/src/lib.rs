//! Test fixtures shared across spire-rs crates.
//!
//! - [`pki`]: a root and intermediate CA made with the identity core, and rcgen helpers to craft
//!   certificates the core would never issue.
//! - [`x509_cases`]: the X509-SVID conformance table, one broken chain per rule.
//! - [`process`]: real `spire-server` processes for end-to-end tests.
//! - [`agent`]: real `spire-agent` processes next to them, and the server's admin CLI.
//! - [`inert`]: checks that a daemon reports each setting it accepts without effect.
//! - [`databases`]: real PostgreSQL and MariaDB servers, one fresh database per test.
//! - [`kube`]: a real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager).
//! - [`kubelet`]: a stand-in kubelet serving `/pods` from the real API server.
//! - [`docker`]: a real Docker engine and images built without a registry.
//! - [`openssl`]: CAs and certificates made by `openssl`, SSH keys by `ssh-keygen`.
//! - [`peers`]: independent implementations to test against (the real SPIRE, go-spiffe, grpcio,
//!   grpc-java), installed by `scripts/install-peers.sh`, and this workspace's binaries.
//! - [`swtpm`]: a software TPM provisioned with an EK certificate and DevID keys (tpm_devid).
//! - [`upstream`]: the real SPIRE's server and agent as processes, for tests across implementations.
//! - [`workload_api`]: a Workload API server with fixed content, for client-side interop tests.
//! - [`workload_api_full`]: a scriptable Workload API and health server, for Workload API client tests.

pub mod agent;
pub mod aws_iid;
pub mod cloud;
pub mod databases;
pub mod docker;
pub mod inert;
pub mod kube;
pub mod kubelet;
pub mod openssl;
pub mod peers;
pub mod pki;
pub mod process;
pub mod proxy;
mod scratch;
pub mod swtpm;
pub mod tls;
pub mod upstream;
pub mod workload_api;
pub mod workload_api_full;
pub mod x509_cases;
