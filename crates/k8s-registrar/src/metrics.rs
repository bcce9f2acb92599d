//! The Prometheus listener of the reconcile and crd modes (`metrics_addr` / `metrics_bind_addr`;
//! `0` disables it).
