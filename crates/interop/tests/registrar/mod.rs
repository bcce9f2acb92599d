//! The Kubernetes workload registrar end to end: our `k8s-workload-registrar` process against the
//! real test cluster (etcd, kube-apiserver, controller manager) and our server, with our agent
//! attested through k8s_psat serving the registered pods' workloads in Docker containers (the
//! [`World`] of the Kubernetes attestation tests).
//!
//! Each test has its own world (node, cluster name), server and namespace; registrars watch the
//! whole cluster, so assertions look only at the test's own node and namespace.

#![allow(dead_code)]

pub(crate) mod crd;
pub(crate) mod reconcile;
pub(crate) mod webhook;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use spire_testkit::kube::Cluster;
use spire_testkit::peers;

use crate::agent_server::ServerUnderTest;
use crate::k8s::World;

/// A running `k8s-workload-registrar`.
pub(crate) struct Registrar {
    child: Option<Child>,
    /// Its configuration file.
    pub(crate) config: PathBuf,
    /// Its log file (`log_path`).
    pub(crate) log_path: PathBuf,
    /// `MY_POD_NAMESPACE`: its Lease and, in crd mode, its node SpiffeIDs live there.
    pub(crate) namespace: String,
    kubeconfig: PathBuf,
}

impl Drop for Registrar {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The registrar's configuration for `world`'s cluster and `server`'s admin socket, with
/// `mode_config` (`mode = "reconcile"` and its keys) appended.
pub(crate) fn config_text<S: ServerUnderTest>(world: &World, server: &S, log_path: &Path, mode_config: &str) -> String {
    format!(
        "log_level = \"debug\"\nlog_path = \"{log}\"\ntrust_domain = \"example.org\"\nserver_socket_path = \"{socket}\"\ncluster = \"{cluster}\"\n{mode_config}\n",
        log = log_path.display(),
        socket = server.socket.display(),
        cluster = world.name,
    )
}

impl Registrar {
    /// Starts the registrar for `world`'s cluster against `server`, as the cluster's admin (its
    /// kubeconfig), in namespace `namespace` (created if needed), with `mode_config` appended to
    /// the configuration. Does not wait for it to be ready: callers wait for what they expect.
    pub(crate) async fn start<S: ServerUnderTest>(
        world: &World,
        server: &S,
        namespace: &str,
        mode_config: &str,
    ) -> Registrar {
        Self::start_instance(world, server, namespace, "", mode_config).await
    }

    /// [`Registrar::start`] for one more registrar of the same namespace (leader election), its
    /// files told apart by `instance`.
    pub(crate) async fn start_instance<S: ServerUnderTest>(
        world: &World,
        server: &S,
        namespace: &str,
        instance: &str,
        mode_config: &str,
    ) -> Registrar {
        world.cluster.ensure_namespace(namespace).await;
        let dir = world.dir.path().join(format!("registrar-{namespace}{instance}"));
        std::fs::create_dir_all(&dir).expect("registrar dir");
        let log_path = dir.join("registrar.log");
        let config = dir.join("registrar.conf");
        std::fs::write(&config, config_text(world, server, &log_path, mode_config)).expect("write config");
        let mut registrar = Registrar {
            child: None,
            config,
            log_path,
            namespace: namespace.to_owned(),
            kubeconfig: world.cluster.kubeconfig_path(),
        };
        registrar.launch();
        registrar
    }

    fn launch(&mut self) {
        let child = Command::new(peers::workspace_binary("k8s-workload-registrar"))
            .arg("-config")
            .arg(&self.config)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("MY_POD_NAMESPACE", &self.namespace)
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(&self.log_path).expect("log file"))
            .spawn()
            .expect("start k8s-workload-registrar");
        self.child = Some(child);
    }

    /// What it logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Whether it has exited (and how).
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().expect("try_wait"))
    }

    /// Stops it (SIGKILL: an outage, not a shutdown).
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again with the same configuration.
    pub(crate) fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

/// A ValidatingWebhookConfiguration `name` with one webhook: `webhook` (its `name`, `rules`...),
/// completed with a client config for `https://127.0.0.1:<port><path>` trusting the cluster's CA, and
/// a namespace selector for `namespace` only (the cluster is shared by tests running side by side).
/// Deleted on drop.
pub(crate) struct WebhookRegistration {
    api: Api<ValidatingWebhookConfiguration>,
    name: String,
}

impl WebhookRegistration {
    pub(crate) async fn create(
        cluster: &Cluster,
        name: &str,
        namespace: &str,
        url_path: &str,
        port: u16,
        mut webhook: Value,
    ) -> Self {
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD.encode(&cluster.ca().cert_pem);
        webhook["clientConfig"] = json!({"url": format!("https://127.0.0.1:{port}{url_path}"), "caBundle": ca});
        webhook["namespaceSelector"] = json!({"matchLabels": {"kubernetes.io/metadata.name": namespace}});
        webhook["admissionReviewVersions"] = json!(["v1", "v1beta1"]);
        webhook["sideEffects"] = json!("NoneOnDryRun");
        webhook["failurePolicy"] = json!("Fail");
        webhook["timeoutSeconds"] = json!(10);
        let config: ValidatingWebhookConfiguration =
            serde_json::from_value(json!({"metadata": {"name": name}, "webhooks": [webhook]}))
                .expect("webhook configuration");
        let api: Api<ValidatingWebhookConfiguration> = Api::all(cluster.client().await);
        api.create(&PostParams::default(), &config).await.expect("create the ValidatingWebhookConfiguration");
        Self { api, name: name.to_owned() }
    }
}

impl Drop for WebhookRegistration {
    fn drop(&mut self) {
        let (api, name) = (self.api.clone(), self.name.clone());
        // From a synchronous drop inside the test's runtime: a thread with a runtime of its own.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let _ = rt.block_on(api.delete(&name, &DeleteParams::default()));
        })
        .join()
        .expect("delete the webhook configuration");
    }
}

/// An entry as `spire-server entry show -output json` shows it, reduced to what the registrar sets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ShownEntry {
    pub(crate) id: String,
    pub(crate) spiffe_id: String,
    pub(crate) parent_id: String,
    /// `type:value`, sorted.
    pub(crate) selectors: BTreeSet<String>,
    pub(crate) dns_names: Vec<String>,
    pub(crate) federates_with: Vec<String>,
}

impl ShownEntry {
    /// The same entry without its ID, for comparing shapes.
    pub(crate) fn shape(&self) -> (String, String, BTreeSet<String>, Vec<String>) {
        (self.spiffe_id.clone(), self.parent_id.clone(), self.selectors.clone(), self.dns_names.clone())
    }
}

fn id_of(v: &Value) -> String {
    format!("spiffe://{}{}", v["trust_domain"].as_str().unwrap_or(""), v["path"].as_str().unwrap_or(""))
}

/// Every entry of `server` (ours or SPIRE's), through its CLI's JSON output.
pub(crate) fn entries<S: ServerUnderTest>(server: &S) -> Vec<ShownEntry> {
    let shown: Value =
        serde_json::from_str(&server.cli(&["entry", "show", "-output", "json"])).expect("entry show JSON");
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
    };
    let mut list: Vec<ShownEntry> = shown["entries"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|e| ShownEntry {
            id: e["id"].as_str().unwrap_or_default().to_owned(),
            spiffe_id: id_of(&e["spiffe_id"]),
            parent_id: id_of(&e["parent_id"]),
            selectors: e["selectors"]
                .as_array()
                .map(|a| a.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|s| format!("{}:{}", s["type"].as_str().unwrap_or(""), s["value"].as_str().unwrap_or("")))
                .collect(),
            dns_names: strings(&e["dns_names"]),
            federates_with: strings(&e["federates_with"]),
        })
        .collect();
    list.sort();
    list
}

/// The entries with a selector `k8s:ns:<namespace>`: a test's pod entries.
pub(crate) fn entries_in_namespace<S: ServerUnderTest>(server: &S, namespace: &str) -> Vec<ShownEntry> {
    let selector = format!("k8s:ns:{namespace}");
    entries(server).into_iter().filter(|e| e.selectors.contains(&selector)).collect()
}

/// Polls `check` every 100 ms until it gives a value, for up to `timeout`; panics with `what` and
/// the last state `describe` gives otherwise.
pub(crate) async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out waiting for {what}\n{}", describe());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
