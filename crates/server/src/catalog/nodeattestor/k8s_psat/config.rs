//! The `plugin_data` of NodeAttestor `k8s_psat`: SPIRE's keys, one block per cluster.
//!
//! ```hcl
//! plugin_data {
//!   clusters = {
//!     "prod" = {
//!       service_account_allow_list = ["spire:spire-agent"]
//!       audience = ["spire-server"]          # the default
//!       kube_config_file = ""                # empty: the in-cluster configuration
//!       allowed_node_label_keys = []
//!       allowed_pod_label_keys = []
//!     }
//!   }
//! }
//! ```
//!
//! Unknown keys are refused, with their path and line, like everywhere else in spire-rs (SPIRE
//! ignores them inside a cluster, which hides typos such as `service_account_allowlist`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use spire_config::plugin_data::decode;
use spire_config::{ConfigError, PluginConfig, Reader};
use spire_identity::TrustDomain;

use super::agent_id;

/// The audience asked of the TokenReview API when a cluster sets none.
pub const DEFAULT_AUDIENCE: &str = "spire-server";

/// The decoded `plugin_data`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct K8sPsatConfig {
    /// `clusters`, by the name agents send in their payload.
    pub clusters: BTreeMap<String, ClusterConfig>,
}

/// One entry of `clusters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `service_account_allow_list`: `<namespace>:<service account>` names whose tokens may attest.
    pub service_account_allow_list: BTreeSet<String>,
    /// `audience`: the audiences the TokenReview must validate; `["spire-server"]` when absent. An
    /// explicit empty list asks for the API server's own audience, as in SPIRE.
    pub audience: Vec<String>,
    /// `kube_config_file`: where to find the cluster's API server; `None` (empty) is the in-cluster
    /// configuration of the pod the server runs in.
    pub kube_config_file: Option<PathBuf>,
    /// `allowed_node_label_keys`: node labels that become `agent_node_label` selectors.
    pub allowed_node_label_keys: BTreeSet<String>,
    /// `allowed_pod_label_keys`: pod labels that become `agent_pod_label` selectors.
    pub allowed_pod_label_keys: BTreeSet<String>,
}

impl ClusterConfig {
    /// A cluster allowing `service_accounts`, every other key at its default.
    pub fn allowing<S: Into<String>>(service_accounts: impl IntoIterator<Item = S>) -> Self {
        Self {
            service_account_allow_list: service_accounts.into_iter().map(Into::into).collect(),
            audience: vec![DEFAULT_AUDIENCE.to_owned()],
            kube_config_file: None,
            allowed_node_label_keys: BTreeSet::new(),
            allowed_pod_label_keys: BTreeSet::new(),
        }
    }
}

impl K8sPsatConfig {
    /// Decodes the plugin's data. `trust_domain` is the server's: a cluster name is part of every
    /// agent ID of its cluster, so a name that cannot be is refused now rather than at each
    /// attestation.
    pub fn from_plugin(plugin: &PluginConfig, trust_domain: &TrustDomain) -> Result<Self, ConfigError> {
        decode(plugin, |r| read(r, trust_domain))
    }
}

fn read(r: &mut Reader<'_, '_>, trust_domain: &TrustDomain) -> K8sPsatConfig {
    let mut clusters = BTreeMap::new();
    if let Some(mut section) = r.object("clusters") {
        for entry in section.take_entries() {
            let path = format!("{}[{:?}]", section.path(), entry.key);
            check_cluster_name(&mut section, &path, &entry.key, entry.key_pos.line, trust_domain);
            if let Some(cluster) = Reader::new(path, &entry.value, section.diags()).map(|c| read_cluster(c, &entry.key))
            {
                clusters.insert(entry.key.clone(), cluster);
            }
        }
        section.finish();
    }
    K8sPsatConfig { clusters }
}

fn read_cluster(mut r: Reader<'_, '_>, name: &str) -> ClusterConfig {
    let allow_list = r.string_list("service_account_allow_list").unwrap_or_default();
    if allow_list.is_empty() {
        let message = format!(
            "{}: cluster {} configuration must have at least one service account allowed",
            r.key_path("service_account_allow_list"),
            spire_cli::flags::go_quote(name)
        );
        let line = r.pos().line;
        r.diags().error(ConfigError::invalid(message, line));
    }
    let cluster = ClusterConfig {
        service_account_allow_list: allow_list.into_iter().collect(),
        audience: r.string_list("audience").unwrap_or_else(|| vec![DEFAULT_AUDIENCE.to_owned()]),
        kube_config_file: r.non_empty_string("kube_config_file").map(PathBuf::from),
        allowed_node_label_keys: r.string_list("allowed_node_label_keys").unwrap_or_default().into_iter().collect(),
        allowed_pod_label_keys: r.string_list("allowed_pod_label_keys").unwrap_or_default().into_iter().collect(),
    };
    r.finish();
    cluster
}

/// Refuses a cluster name that cannot sit in `spiffe://<td>/spire/agent/k8s_psat/<cluster>/<node uid>`
/// (SPIRE accepts it and then fails every attestation from that cluster).
fn check_cluster_name(r: &mut Reader<'_, '_>, path: &str, name: &str, line: usize, trust_domain: &TrustDomain) {
    const SAMPLE_NODE_UID: &str = "00000000-0000-0000-0000-000000000000";
    if let Err(e) = agent_id(trust_domain, name, SAMPLE_NODE_UID) {
        let message = format!("{path}: the cluster name cannot be part of an agent ID: {e}");
        r.diags().error(ConfigError::invalid(message, line));
    }
}

/// A NodeAttestor "k8s_psat" block with `data` (HCL or JSON) as its `plugin_data`.
#[cfg(test)]
pub(crate) fn test_plugin(data: &str) -> PluginConfig {
    crate::catalog::nodeattestor::test_plugin("k8s_psat", data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(data: &str) -> PluginConfig {
        test_plugin(data)
    }

    fn td() -> TrustDomain {
        TrustDomain::parse("example.org").unwrap()
    }

    fn decode_err(data: &str) -> String {
        K8sPsatConfig::from_plugin(&plugin(data), &td()).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let c = K8sPsatConfig::from_plugin(
            &plugin(r#"clusters = { "prod" = { service_account_allow_list = ["spire:spire-agent"] } }"#),
            &td(),
        )
        .unwrap();
        assert_eq!(c.clusters.len(), 1);
        assert_eq!(c.clusters["prod"], ClusterConfig::allowing(["spire:spire-agent"]));
    }

    #[test]
    fn every_key() {
        let c = K8sPsatConfig::from_plugin(
            &plugin(
                r#"clusters = {
  "a" = {
    service_account_allow_list = ["ns1:sa1", "ns2:sa2"]
    audience = ["x", "y"]
    kube_config_file = "/etc/kube/a.yaml"
    allowed_node_label_keys = ["zone"]
    allowed_pod_label_keys = ["app", "tier"]
  }
  "b" = {
    service_account_allow_list = ["ns:sa"]
    audience = []
    kube_config_file = ""
  }
}"#,
            ),
            &td(),
        )
        .unwrap();
        let a = &c.clusters["a"];
        assert_eq!(a.service_account_allow_list, ["ns1:sa1", "ns2:sa2"].map(String::from).into());
        assert_eq!(a.audience, ["x", "y"]);
        assert_eq!(a.kube_config_file, Some(PathBuf::from("/etc/kube/a.yaml")));
        assert_eq!(a.allowed_node_label_keys, ["zone".to_owned()].into());
        assert_eq!(a.allowed_pod_label_keys, ["app", "tier"].map(String::from).into());
        let b = &c.clusters["b"];
        assert!(b.audience.is_empty(), "an explicit empty audience stays empty");
        assert_eq!(b.kube_config_file, None);
    }

    #[test]
    fn json_form() {
        let c = K8sPsatConfig::from_plugin(
            &plugin(r#"{"clusters": {"c": {"service_account_allow_list": ["ns:sa"]}}}"#),
            &td(),
        )
        .unwrap();
        assert!(c.clusters.contains_key("c"));
    }

    #[test]
    fn no_clusters_is_accepted_as_in_spire() {
        assert!(K8sPsatConfig::from_plugin(&plugin(""), &td()).unwrap().clusters.is_empty());
        assert!(K8sPsatConfig::from_plugin(&plugin("clusters = {}"), &td()).unwrap().clusters.is_empty());
    }

    #[test]
    fn allow_list_is_required() {
        for data in [
            r#"clusters = { "prod" = { audience = ["a"] } }"#,
            r#"clusters = { "prod" = { service_account_allow_list = [] } }"#,
        ] {
            let err = decode_err(data);
            assert!(
                err.contains(
                    "plugins.NodeAttestor.k8s_psat.plugin_data.clusters[\"prod\"].service_account_allow_list: \
                     cluster \"prod\" configuration must have at least one service account allowed"
                ),
                "{err}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_their_path() {
        let err = decode_err(r#"clusters = { "p" = { service_account_allow_list = ["a:b"], use_pod_uid = true } }"#);
        assert!(err.contains("use_pod_uid"), "{err}");
        assert!(err.contains("clusters[\"p\"]"), "{err}");
        let err = decode_err(r#"cluster = {}"#);
        assert!(err.contains("\"cluster\""), "{err}");
    }

    #[test]
    fn wrong_types_are_named() {
        let err = decode_err(r#"clusters = { "p" = { service_account_allow_list = "a:b" } }"#);
        assert!(err.contains("clusters[\"p\"].service_account_allow_list"), "{err}");
        assert!(err.contains("a list of strings"), "{err}");
        let err = decode_err(r#"clusters = ["p"]"#);
        assert!(err.contains("clusters"), "{err}");
    }

    #[test]
    fn cluster_names_must_fit_in_an_agent_id() {
        let err = decode_err(r#"clusters = { "my cluster" = { service_account_allow_list = ["a:b"] } }"#);
        assert!(err.contains("clusters[\"my cluster\"]: the cluster name cannot be part of an agent ID"), "{err}");
        let err = decode_err(r#"clusters = { "" = { service_account_allow_list = ["a:b"] } }"#);
        assert!(err.contains("cannot be part of an agent ID"), "{err}");
    }
}
