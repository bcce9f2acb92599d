//! Leader election on a `coordination.k8s.io/v1` Lease, so that only one of several registrar
//! replicas writes entries (`leader_election`).
