//! Protocol definitions for spire-rs: messages plus gRPC clients and servers
//! (tonic) for
//!
//! - the SPIFFE Workload API ([`workload`]; unpackaged, so method paths are
//!   `/SpiffeWorkloadAPI/<Method>` as every SPIFFE client expects),
//! - the SPIRE server APIs ([`spire::api::server`]) and their shared types
//!   ([`spire::api::types`]),
//! - the SPIRE agent admin APIs ([`spire::api::agent`] and
//!   [`spire::agent::debug::v1`], whose upstream package really is
//!   `spire.agent.debug.v1`),
//! - gRPC health checking ([`grpc::health::v1`]),
//! - Envoy's Secret Discovery Service and the xDS messages it needs
//!   ([`envoy`], [`google::rpc`]).
//!
//! The `.proto` files under `crates/proto/proto` mirror the upstream
//! definitions (spire-api-sdk, the SPIFFE standards, grpc-proto, Envoy) with
//! identical packages, names and field numbers, so that the generated code is
//! wire-compatible with SPIRE, its CLI and third-party SPIFFE clients. The
//! Envoy files are trimmed to what SDS needs (each lists what was left out).
//!
//! The Rust code in `src/gen` is generated and checked in: this crate has no
//! build script and needs no `protoc`. After editing a `.proto` file run
//! `cargo xtask gen-proto`; `cargo xtask check-proto` (and `cargo test`, via
//! the xtask `proto_drift` test) fails when the checked-in code is stale.
//! Module paths mirror protobuf packages; well-known types map to
//! [`prost_types`].
//!
//! The generated modules carry `#[allow(...)]` attributes: generated code is
//! not held to the lints that apply to hand-written code.

/// SPIFFE Workload API (`workload.proto`, no protobuf package).
#[allow(clippy::all, clippy::pedantic, clippy::nursery, missing_docs, missing_debug_implementations, unreachable_pub)]
pub mod workload {
    include!("gen/workload.rs");
}

/// SPIRE APIs (spire-api-sdk).
#[allow(clippy::all, clippy::pedantic, clippy::nursery, missing_docs, missing_debug_implementations, unreachable_pub)]
pub mod spire {
    /// `spire.api.*` packages.
    pub mod api {
        /// `spire.api.types`: messages shared by the SPIRE APIs.
        pub mod types {
            include!("gen/spire.api.types.rs");
        }

        /// `spire.api.server.*`: APIs served by the SPIRE server.
        pub mod server {
            /// `spire.api.server.agent.*`
            pub mod agent {
                /// `spire.api.server.agent.v1`
                pub mod v1 {
                    include!("gen/spire.api.server.agent.v1.rs");
                }
            }

            /// `spire.api.server.bundle.*`
            pub mod bundle {
                /// `spire.api.server.bundle.v1`
                pub mod v1 {
                    include!("gen/spire.api.server.bundle.v1.rs");
                }
            }

            /// `spire.api.server.debug.*`
            pub mod debug {
                /// `spire.api.server.debug.v1`
                pub mod v1 {
                    include!("gen/spire.api.server.debug.v1.rs");
                }
            }

            /// `spire.api.server.entry.*`
            pub mod entry {
                /// `spire.api.server.entry.v1`
                pub mod v1 {
                    include!("gen/spire.api.server.entry.v1.rs");
                }
            }

            /// `spire.api.server.localauthority.*`
            pub mod localauthority {
                /// `spire.api.server.localauthority.v1`
                pub mod v1 {
                    include!("gen/spire.api.server.localauthority.v1.rs");
                }
            }

            /// `spire.api.server.logger.*`
            pub mod logger {
                /// `spire.api.server.logger.v1`
                pub mod v1 {
                    include!("gen/spire.api.server.logger.v1.rs");
                }
            }

            /// `spire.api.server.svid.*`
            pub mod svid {
                /// `spire.api.server.svid.v1`
                pub mod v1 {
                    include!("gen/spire.api.server.svid.v1.rs");
                }
            }

            /// `spire.api.server.trustdomain.*`
            pub mod trustdomain {
                /// `spire.api.server.trustdomain.v1`
                pub mod v1 {
                    include!("gen/spire.api.server.trustdomain.v1.rs");
                }
            }
        }

        /// `spire.api.agent.*`: agent admin APIs.
        pub mod agent {
            /// `spire.api.agent.delegatedidentity.*`
            pub mod delegatedidentity {
                /// `spire.api.agent.delegatedidentity.v1`
                pub mod v1 {
                    include!("gen/spire.api.agent.delegatedidentity.v1.rs");
                }
            }

            /// `spire.api.agent.logger.*`
            pub mod logger {
                /// `spire.api.agent.logger.v1`
                pub mod v1 {
                    include!("gen/spire.api.agent.logger.v1.rs");
                }
            }
        }
    }

    /// `spire.agent.*` (upstream file `spire/api/agent/debug/v1/debug.proto`).
    pub mod agent {
        /// `spire.agent.debug.*`
        pub mod debug {
            /// `spire.agent.debug.v1`
            pub mod v1 {
                include!("gen/spire.agent.debug.v1.rs");
            }
        }
    }
}

/// gRPC standard services.
#[allow(clippy::all, clippy::pedantic, clippy::nursery, missing_docs, missing_debug_implementations, unreachable_pub)]
pub mod grpc {
    /// `grpc.health.*`
    pub mod health {
        /// `grpc.health.v1`
        pub mod v1 {
            include!("gen/grpc.health.v1.rs");
        }
    }
}

/// Google API types used by xDS.
#[allow(clippy::all, clippy::pedantic, clippy::nursery, missing_docs, missing_debug_implementations, unreachable_pub)]
pub mod google {
    /// `google.rpc`
    pub mod rpc {
        include!("gen/google.rpc.rs");
    }
}

/// Envoy xDS (SDS subset).
#[allow(clippy::all, clippy::pedantic, clippy::nursery, missing_docs, missing_debug_implementations, unreachable_pub)]
pub mod envoy {
    /// `envoy.config.*`
    pub mod config {
        /// `envoy.config.core.*`
        pub mod core {
            /// `envoy.config.core.v3`
            pub mod v3 {
                include!("gen/envoy.config.core.v3.rs");
            }
        }
    }

    /// `envoy.extensions.*`
    pub mod extensions {
        /// `envoy.extensions.transport_sockets.*`
        pub mod transport_sockets {
            /// `envoy.extensions.transport_sockets.tls.*`
            pub mod tls {
                /// `envoy.extensions.transport_sockets.tls.v3`
                pub mod v3 {
                    include!("gen/envoy.extensions.transport_sockets.tls.v3.rs");
                }
            }
        }
    }

    /// `envoy.service.*`
    pub mod service {
        /// `envoy.service.discovery.*`
        pub mod discovery {
            /// `envoy.service.discovery.v3`
            pub mod v3 {
                include!("gen/envoy.service.discovery.v3.rs");
            }
        }

        /// `envoy.service.secret.*`
        pub mod secret {
            /// `envoy.service.secret.v3`
            pub mod v3 {
                include!("gen/envoy.service.secret.v3.rs");
            }
        }
    }
}
