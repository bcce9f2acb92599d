//! The Kubernetes workload registrar (`k8s-workload-registrar`) in its three modes, end to end on
//! the real test cluster with our server and agent (see `registrar/mod.rs`).

mod agent_server;
mod k8s;
mod registrar;
