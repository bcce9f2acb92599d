//! Independent peers the interoperability tests run against: the real SPIRE (server, agent, CLIs),
//! go-spiffe, Python's grpcio and grpc-java clients, and the test plugins built with spire-plugin-sdk
//! (`spire-test-plugin-<name>`, from crates/interop/peers/spire-plugins).
//!
//! `scripts/install-peers.sh` builds each peer once per machine into a cache outside the clone
//! (`$SPIRE_RS_PEERS_DIR`, default `~/.cache/spire-rs-peers`), keyed by version and by a hash of our
//! own client sources, and puts one executable per peer in `<cache>/bin`. Tests ask for a peer by
//! that name. A missing peer skips the test with a message saying so, unless `SPIRE_REQUIRE_PEERS=1`
//! (set by `.ci/run`), which makes it a failure.

use std::path::{Path, PathBuf};

/// The peers' cache directory.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SPIRE_RS_PEERS_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache/spire-rs-peers")
}

/// `<cache>/bin/<name>` if it is there.
pub fn find(name: &str) -> Option<PathBuf> {
    let path = cache_dir().join("bin").join(name);
    path.exists().then_some(path)
}

/// Whether a missing peer must fail the test rather than skip it.
pub fn required() -> bool {
    std::env::var("SPIRE_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// The peer `name`, or `None` after printing that the test is skipped; panics instead when peers
/// are required. Use as `let Some(spire) = peers::require("spire-server") else { return };`.
pub fn require(name: &str) -> Option<PathBuf> {
    if let Some(path) = find(name) {
        return Some(path);
    }
    let dir = cache_dir();
    assert!(
        !required(),
        "peer {name} is missing from {}/bin and SPIRE_REQUIRE_PEERS=1: run scripts/install-peers.sh",
        dir.display()
    );
    eprintln!("skipped: peer {name} is not installed in {}/bin (run scripts/install-peers.sh)", dir.display());
    None
}

/// Every peer in `names`, or `None` (skipped, or a panic when required) if one is missing.
pub fn require_all<const N: usize>(names: [&str; N]) -> Option<[PathBuf; N]> {
    let found: Vec<PathBuf> = names.iter().filter_map(|n| require(n)).collect();
    found.try_into().ok()
}

/// A binary of this workspace, built by `cargo test --workspace` into the target directory next to
/// the running test executable (`target/<profile>/deps/<test>` → `target/<profile>/<name>`).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, or build it first (`cargo build -p {name}`)",
        path.display()
    );
    path
}
