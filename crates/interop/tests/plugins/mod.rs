//! The external plugin tests' parts: which implementation runs the daemons ([`Implementation`]), the
//! test plugins built with spire-plugin-sdk (`crates/interop/peers/spire-plugins`, found through the
//! peers cache with their checksums: [`TestPlugins`]), the configuration loading them ([`config`]),
//! the end-to-end scenario and its comparable [`Summary`] ([`scenario`]), and the refusals
//! ([`refusal`]).

// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

pub(crate) mod config;
pub(crate) mod refusal;
pub(crate) mod scenario;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use spire_testkit::peers;

/// Whose `spire-server` and `spire-agent` load the plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Implementation {
    /// SPIRE v1.13.3, from the peers cache.
    Spire,
    /// spire-rs, built next to this test.
    Ours,
}

impl Implementation {
    /// The server and agent binaries, or `None` (the test skipped) when SPIRE's are missing peers.
    pub(crate) fn binaries(self) -> Option<(PathBuf, PathBuf)> {
        match self {
            Self::Spire => {
                let [server, agent] = peers::require_all(["upstream-spire-server", "upstream-spire-agent"])?;
                Some((server, agent))
            }
            Self::Ours => Some((peers::workspace_binary("spire-server"), peers::workspace_binary("spire-agent"))),
        }
    }

    /// `SPIRE v1.13.3` or `spire-rs`, in messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Spire => "SPIRE v1.13.3",
            Self::Ours => "spire-rs",
        }
    }
}

/// The Go test plugins (`cmd/<name>` of crates/interop/peers/spire-plugins).
pub(crate) const PLUGIN_NAMES: [&str; 10] = [
    "challenge-agent",
    "challenge-server",
    "workload",
    "keymanager-server",
    "keymanager-agent",
    "upstream",
    "notifier",
    "bundlepublisher",
    "credentialcomposer",
    "misbehave",
];

/// The Info line every test plugin logs from a successful Configure (internal/common/common.go).
pub(crate) const CONFIGURED_MESSAGE: &str = "test plugin configured";

/// One installed test plugin: its executable and the SHA-256 `plugin_checksum` wants.
#[derive(Debug, Clone)]
pub(crate) struct TestPlugin {
    pub(crate) path: PathBuf,
    pub(crate) checksum: String,
}

/// Every test plugin, by name.
#[derive(Debug, Clone)]
pub(crate) struct TestPlugins(BTreeMap<&'static str, TestPlugin>);

impl TestPlugins {
    /// All of them, or `None` (the test skipped) when they are not installed.
    pub(crate) fn find() -> Option<Self> {
        let mut plugins = BTreeMap::new();
        for name in PLUGIN_NAMES {
            let path = peers::require(&format!("spire-test-plugin-{name}"))?;
            let checksum = sha256_hex(&path);
            plugins.insert(name, TestPlugin { path, checksum });
        }
        Some(Self(plugins))
    }

    /// The plugin `name` (one of [`PLUGIN_NAMES`]).
    pub(crate) fn get(&self, name: &str) -> &TestPlugin {
        self.0.get(name).unwrap_or_else(|| panic!("no test plugin {name}"))
    }
}

/// The hex SHA-256 of the file at `path` (through symlinks), as `sha256sum` prints it.
pub(crate) fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().expect("run sha256sum");
    assert!(out.status.success(), "sha256sum {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("a digest").to_owned()
}
