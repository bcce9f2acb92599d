//! The registrar's HCL file: SPIRE v1.3.6's keys and defaults, read strictly.
//!
//! SPIRE decodes the file three times (common keys, then the mode's) and ignores whatever it does not
//! know, so a typo silently falls back to a default. We read the same keys once and refuse the rest,
//! naming the key and its line; a key that belongs to another mode is refused with the mode it needs.

use std::path::Path;

use spire_config::log::{LogConfig, LogFormat, LogLevel};
use spire_config::{ConfigError, Diagnostics, Reader, Value};
use spire_identity::TrustDomain;

/// Where the registrar reaches the SPIRE server's Entry API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAddress {
    /// The server's admin Unix socket (`unix:///path` or `server_socket_path`): no TLS, the socket's
    /// permissions are the authorization.
    Unix(String),
    /// `host:port` over mTLS, with the X509-SVID the agent at `agent_socket` gives the registrar.
    Tcp {
        /// `host:port`.
        address: String,
        /// The agent's Workload API socket.
        agent_socket: String,
    },
}

/// Which pod attribute names a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSource {
    /// `spiffe://<td>/ns/<ns>/sa/<sa>` (neither `pod_label` nor `pod_annotation`).
    ServiceAccount,
    /// `spiffe://<td>/<value of this label>`.
    Label(String),
    /// `spiffe://<td>/<value of this annotation>`.
    Annotation(String),
}

/// Keys every mode shares.
#[derive(Debug, Clone)]
pub struct Common {
    /// `log_level`, `log_format`, `log_path`.
    pub log: LogConfig,
    /// `trust_domain`.
    pub trust_domain: TrustDomain,
    /// `server_address` / `server_socket_path` / `agent_socket_path`.
    pub server: ServerAddress,
    /// `cluster`.
    pub cluster: String,
    /// `pod_label` / `pod_annotation`.
    pub id_source: IdSource,
    /// `disabled_namespaces` (default `kube-system`, `kube-public`).
    pub disabled_namespaces: Vec<String>,
}

/// `mode = "webhook"` (the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// `addr` (`:8443`).
    pub addr: String,
    /// `cert_path` (`cert.pem`).
    pub cert_path: String,
    /// `key_path` (`key.pem`).
    pub key_path: String,
    /// `cacert_path` (`cacert.pem`): the CA of the API server's client certificate.
    pub cacert_path: String,
    /// `insecure_skip_client_verification` (false).
    pub insecure_skip_client_verification: bool,
}

/// `mode = "reconcile"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileConfig {
    /// `leader_election` (false).
    pub leader_election: bool,
    /// `leader_election_resource_lock` (accepted for compatibility; we always use a Lease).
    pub leader_election_resource_lock: String,
    /// `metrics_addr` (`:8080`; `0` disables).
    pub metrics_addr: String,
    /// `controller_name` (`spire-k8s-registrar`).
    pub controller_name: String,
    /// `add_pod_dns_names` (false).
    pub add_pod_dns_names: bool,
    /// `cluster_dns_zone` (`cluster.local`).
    pub cluster_dns_zone: String,
}

/// `mode = "crd"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrdConfig {
    /// `add_svc_dns_name` (true).
    pub add_svc_dns_name: bool,
    /// `leader_election` (false).
    pub leader_election: bool,
    /// `leader_election_resource_lock` (accepted for compatibility; we always use a Lease).
    pub leader_election_resource_lock: String,
    /// `metrics_bind_addr` (`:8080`; `0` disables).
    pub metrics_bind_addr: String,
    /// `pod_controller` (true).
    pub pod_controller: bool,
    /// `webhook_enabled` (false).
    pub webhook_enabled: bool,
    /// `webhook_cert_dir` (`/run/spire/serving-certs`; `tls.crt` and `tls.key`).
    pub webhook_cert_dir: String,
    /// `webhook_port` (9443).
    pub webhook_port: u16,
    /// `webhook_service_name` (`k8s-workload-registrar`).
    pub webhook_service_name: String,
}

/// The mode and its own keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Admission webhook.
    Webhook(WebhookConfig),
    /// Node and Pod controllers writing entries directly.
    Reconcile(ReconcileConfig),
    /// SpiffeID custom resources.
    Crd(CrdConfig),
}

impl Mode {
    /// The `mode` value.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Webhook(_) => "webhook",
            Self::Reconcile(_) => "reconcile",
            Self::Crd(_) => "crd",
        }
    }
}

impl Config {
    /// The path of the registrar's node entries, under which the mode parents pod entries
    /// (`/<controller_name>/<cluster>/node` in reconcile mode, `/k8s-workload-registrar/<cluster>/node`
    /// otherwise): no workload ID may fall under it.
    pub fn node_root_path(&self) -> String {
        match &self.mode {
            Mode::Reconcile(r) => format!("/{}/{}/node", r.controller_name, self.common.cluster),
            Mode::Webhook(_) | Mode::Crd(_) => format!("/k8s-workload-registrar/{}/node", self.common.cluster),
        }
    }
}

/// A whole, valid configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Keys of every mode.
    pub common: Common,
    /// The mode's keys.
    pub mode: Mode,
}

/// The default `-config`.
pub const DEFAULT_CONFIG_PATH: &str = "k8s-workload-registrar.conf";

const WEBHOOK_KEYS: &[&str] = &["addr", "cert_path", "key_path", "cacert_path", "insecure_skip_client_verification"];
const RECONCILE_KEYS: &[&str] = &["metrics_addr", "controller_name", "add_pod_dns_names", "cluster_dns_zone"];
const CRD_KEYS: &[&str] = &[
    "add_svc_dns_name",
    "metrics_bind_addr",
    "pod_controller",
    "webhook_enabled",
    "webhook_cert_dir",
    "webhook_port",
    "webhook_service_name",
    "identity_template",
    "identity_template_label",
    "dns_name_templates",
    "context",
];

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = spire_config::load::read_text(path)?;
        Self::parse(&text)
    }

    /// Parses and validates configuration text (HCL, or JSON).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let doc = spire_config::parse_str(text, false)?;
        let mut diags = Diagnostics::new();
        let config = read(&doc, &mut diags);
        match (diags.into_error(), config) {
            (Some(e), _) => Err(e),
            (None, Some(config)) => Ok(config),
            (None, None) => Err(ConfigError::invalid("the configuration is not a block of keys", None)),
        }
    }
}

fn read(doc: &Value, diags: &mut Diagnostics) -> Option<Config> {
    let mut r = Reader::new("", doc, diags)?;
    let line = r.pos().line;
    let common = read_common(&mut r);
    let mode_name = r.non_empty_string("mode").unwrap_or_else(|| "webhook".to_owned());
    let mode = match mode_name.as_str() {
        "webhook" => Some(Mode::Webhook(read_webhook(&mut r))),
        "reconcile" => Some(Mode::Reconcile(read_reconcile(&mut r))),
        "crd" => Some(Mode::Crd(read_crd(&mut r))),
        other => {
            r.diags().error(ConfigError::invalid(
                format!("invalid mode {other:?}, valid values are crd, webhook and reconcile"),
                line,
            ));
            None
        }
    };
    if let Some(mode) = &mode {
        refuse_other_modes_keys(&mut r, mode.name());
    }
    r.finish();
    Some(Config { common: common?, mode: mode? })
}

fn read_common(r: &mut Reader<'_, '_>) -> Option<Common> {
    let line = r.pos().line;
    let mut log = LogConfig::default();
    if let Some((level, at)) = r.string_at("log_level").filter(|(s, _)| !s.is_empty()) {
        match LogLevel::parse(&level) {
            Some(l) => log.level = l,
            None => r.diags().error(ConfigError::invalid(
                format!("log_level {level:?} is not a valid log level: use one of panic, fatal, error, warn, info, debug, trace"),
                at.line,
            )),
        }
    }
    if let Some((format, at)) = r.string_at("log_format").filter(|(s, _)| !s.is_empty()) {
        match LogFormat::parse(&format) {
            Some(f) => log.format = f,
            None => r
                .diags()
                .error(ConfigError::invalid(format!("log_format {format:?} is not valid: use text or json"), at.line)),
        }
    }
    log.file = r.non_empty_string("log_path").map(Into::into);

    let trust_domain = match r.string_at("trust_domain").filter(|(s, _)| !s.is_empty()) {
        None => {
            r.diags().error(ConfigError::invalid("trust_domain must be specified", line));
            None
        }
        Some((td, at)) => match TrustDomain::parse(&td) {
            Ok(td) => Some(td),
            Err(e) => {
                r.diags().error(ConfigError::invalid(format!("malformed trust domain {td:?}: {e}"), at.line));
                None
            }
        },
    };

    let server_address = r.non_empty_string("server_address");
    let server_socket_path = r.non_empty_string("server_socket_path");
    let agent_socket = r.non_empty_string("agent_socket_path");
    let server = match (server_address, server_socket_path) {
        (Some(address), _) => match address.strip_prefix("unix://") {
            Some(path) => Some(ServerAddress::Unix(path.to_owned())),
            None => match agent_socket {
                Some(agent_socket) => Some(ServerAddress::Tcp { address, agent_socket }),
                None => {
                    r.diags().error(ConfigError::invalid(
                        "agent_socket_path must be specified if the server is not a local socket",
                        line,
                    ));
                    None
                }
            },
        },
        (None, Some(path)) => Some(ServerAddress::Unix(path)),
        (None, None) => {
            r.diags().error(ConfigError::invalid("server_address or server_socket_path must be specified", line));
            None
        }
    };

    let cluster = r.non_empty_string("cluster");
    if cluster.is_none() {
        r.diags().error(ConfigError::invalid("cluster must be specified", line));
    }

    let label = r.non_empty_string("pod_label");
    let annotation = r.non_empty_string("pod_annotation");
    let id_source = match (label, annotation) {
        (Some(_), Some(_)) => {
            r.diags().error(ConfigError::invalid(
                "workload registration mode specification is incorrect, can't specify both pod_label and pod_annotation",
                line,
            ));
            None
        }
        (Some(label), None) => Some(IdSource::Label(label)),
        (None, Some(annotation)) => Some(IdSource::Annotation(annotation)),
        (None, None) => Some(IdSource::ServiceAccount),
    };
    let disabled_namespaces = r
        .string_list("disabled_namespaces")
        .unwrap_or_else(|| vec!["kube-system".to_owned(), "kube-public".to_owned()]);

    Some(Common {
        log,
        trust_domain: trust_domain?,
        server: server?,
        cluster: cluster?,
        id_source: id_source?,
        disabled_namespaces,
    })
}

fn read_webhook(r: &mut Reader<'_, '_>) -> WebhookConfig {
    WebhookConfig {
        addr: r.non_empty_string("addr").unwrap_or_else(|| ":8443".to_owned()),
        cert_path: r.non_empty_string("cert_path").unwrap_or_else(|| "cert.pem".to_owned()),
        key_path: r.non_empty_string("key_path").unwrap_or_else(|| "key.pem".to_owned()),
        cacert_path: r.non_empty_string("cacert_path").unwrap_or_else(|| "cacert.pem".to_owned()),
        insecure_skip_client_verification: r.bool("insecure_skip_client_verification").unwrap_or(false),
    }
}

fn read_lock(r: &mut Reader<'_, '_>) -> String {
    r.non_empty_string("leader_election_resource_lock").unwrap_or_else(|| "configmaps".to_owned())
}

fn read_reconcile(r: &mut Reader<'_, '_>) -> ReconcileConfig {
    ReconcileConfig {
        leader_election: r.bool("leader_election").unwrap_or(false),
        leader_election_resource_lock: read_lock(r),
        metrics_addr: r.non_empty_string("metrics_addr").unwrap_or_else(|| ":8080".to_owned()),
        controller_name: r.non_empty_string("controller_name").unwrap_or_else(|| "spire-k8s-registrar".to_owned()),
        add_pod_dns_names: r.bool("add_pod_dns_names").unwrap_or(false),
        cluster_dns_zone: r.non_empty_string("cluster_dns_zone").unwrap_or_else(|| "cluster.local".to_owned()),
    }
}

fn read_crd(r: &mut Reader<'_, '_>) -> CrdConfig {
    let config = CrdConfig {
        add_svc_dns_name: r.bool("add_svc_dns_name").unwrap_or(true),
        leader_election: r.bool("leader_election").unwrap_or(false),
        leader_election_resource_lock: read_lock(r),
        metrics_bind_addr: r.non_empty_string("metrics_bind_addr").unwrap_or_else(|| ":8080".to_owned()),
        pod_controller: r.bool("pod_controller").unwrap_or(true),
        webhook_enabled: r.bool("webhook_enabled").unwrap_or(false),
        webhook_cert_dir: r
            .non_empty_string("webhook_cert_dir")
            .unwrap_or_else(|| "/run/spire/serving-certs".to_owned()),
        webhook_port: r.int::<u16>("webhook_port").filter(|&p| p != 0).unwrap_or(9443),
        webhook_service_name: r
            .non_empty_string("webhook_service_name")
            .unwrap_or_else(|| "k8s-workload-registrar".to_owned()),
    };
    // SPIRE v1.3.6's identity templates: refused by name rather than ignored, since an entry with
    // another SPIFFE ID than the operator asked for would be worse than not starting.
    for key in ["identity_template", "identity_template_label", "dns_name_templates", "context"] {
        if let Some(v) = r.take(key) {
            let line = v.pos.line;
            r.diags()
                .error(ConfigError::invalid(format!("{key} is not supported yet (crd mode identity templates)"), line));
        }
    }
    config
}

/// A key of another mode is a mistake the operator should hear about (SPIRE ignores it).
fn refuse_other_modes_keys(r: &mut Reader<'_, '_>, mode: &str) {
    let others: [(&str, &[&str]); 3] = [("webhook", WEBHOOK_KEYS), ("reconcile", RECONCILE_KEYS), ("crd", CRD_KEYS)];
    for (other, keys) in others {
        if other == mode {
            continue;
        }
        for key in keys.iter().copied() {
            if let Some(v) = r.take(key) {
                let line = v.pos.line;
                r.diags().error(ConfigError::invalid(
                    format!("{key} applies to mode \"{other}\" only, but mode is \"{mode}\""),
                    line,
                ));
            }
        }
    }
    if mode == "webhook" {
        for key in ["leader_election", "leader_election_resource_lock"] {
            if let Some(v) = r.take(key) {
                let line = v.pos.line;
                r.diags().error(ConfigError::invalid(
                    format!("{key} applies to modes \"reconcile\" and \"crd\" only, but mode is \"webhook\""),
                    line,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests;
