//! A real Kubernetes control plane for the tests: etcd 3.6, kube-apiserver and
//! kube-controller-manager v1.36.3, built from the Go module proxy by `scripts/install-peers.sh`
//! (peers `etcd`, `kube-apiserver`) and started here on loopback.
//!
//! [`Cluster::shared`] starts one cluster per test process, shared by its tests, so each test
//! binary (suite) has its own. There is no scheduler and no kubelet: tests create Nodes, Pods with
//! `spec.nodeName` set, and write the pods' status themselves ([`Cluster::set_pod_running`]). The
//! API server has TLS from a CA of ours, a service-account signing key the tests can read (to mint
//! tokens the API server will judge, e.g. expired ones), `--service-account-issuer`, RBAC, and an
//! admin bearer token in the `system:masters` group. The controller manager runs the
//! service-account, namespace, garbage-collector and endpoints controllers.
//!
//! Processes are started under `setpriv --pdeathsig KILL` from a long-lived thread, so they die with
//! the test process however it exits.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
use serde_json::json;
use tokio::sync::OnceCell;

use crate::peers;
use crate::process::free_port;

/// How long the control plane may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The Kubernetes version the peers build.
pub const VERSION: &str = "v1.36.3";

/// A CA of the test's own, for the API server's and the stand-in kubelets' serving certificates.
#[derive(Debug)]
pub struct TestCa {
    params: CertificateParams,
    key: KeyPair,
    /// The CA certificate, PEM.
    pub cert_pem: String,
}

impl TestCa {
    /// A fresh CA.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert_pem = params.self_signed(&key).expect("self-sign the CA").pem();
        Self { params, key, cert_pem }
    }

    /// A serving certificate for 127.0.0.1 and `localhost` (plus `names`), and its key, both PEM.
    pub fn server_cert(&self, names: &[&str]) -> (String, String) {
        let mut sans: Vec<String> = vec!["localhost".into()];
        sans.extend(names.iter().map(|n| n.to_string()));
        let mut params = CertificateParams::new(sans).expect("server params");
        params.subject_alt_names.push(SanType::IpAddress([127, 0, 0, 1].into()));
        params.distinguished_name.push(DnType::CommonName, "127.0.0.1");
        let key = KeyPair::generate().expect("server key");
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("sign the server certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// A client certificate (`clientAuth`) for `common_name`, and its key, both PEM.
    pub fn client_cert(&self, common_name: &str) -> (String, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("client key");
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("sign the client certificate");
        (cert.pem(), key.serialize_pem())
    }
}

/// A running control plane.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    port: u16,
    admin_token: String,
    ca: TestCa,
    sa_key_pem: String,
    children: std::sync::Mutex<Vec<Child>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.children.get_mut().map(std::mem::take).unwrap_or_default() {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The etcd, kube-apiserver and kube-controller-manager binaries, or `None` (skipped, or a panic
/// when peers are required).
fn binaries() -> Option<[PathBuf; 3]> {
    peers::require_all(["etcd", "kube-apiserver", "kube-controller-manager"])
}

impl Cluster {
    /// The cluster of this test process, started on first use; `None` when the peers are missing
    /// (the test prints that it is skipped) unless `SPIRE_REQUIRE_PEERS=1`.
    pub async fn shared() -> Option<&'static Cluster> {
        static CLUSTER: OnceCell<Option<Cluster>> = OnceCell::const_new();
        CLUSTER.get_or_init(|| async { Cluster::start().await }).await.as_ref()
    }

    /// A cluster of its own, stopped on drop.
    pub async fn start() -> Option<Cluster> {
        let [etcd, apiserver, kcm] = binaries()?;
        let dir = crate::scratch::owned_dir("spire-rs-kube-");
        let port = free_port();
        let ca = TestCa::new("spire-rs test cluster CA");
        let sa_key = KeyPair::generate().expect("service-account key");
        let admin_token = format!("admin-{}", std::process::id());
        let cluster = Cluster {
            dir,
            port,
            admin_token,
            ca,
            sa_key_pem: sa_key.serialize_pem(),
            children: std::sync::Mutex::new(Vec::new()),
        };
        cluster.write_files(&sa_key);
        let etcd_port = cluster.start_etcd(&etcd);
        cluster.start_apiserver(&apiserver, etcd_port);
        cluster.wait_ready().await;
        cluster.start_controller_manager(&kcm);
        Some(cluster)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn write_files(&self, sa_key: &KeyPair) {
        let (cert, key) = self.ca.server_cert(&["kubernetes", "kubernetes.default.svc"]);
        std::fs::write(self.path("ca.pem"), &self.ca.cert_pem).expect("write ca.pem");
        std::fs::write(self.path("apiserver.pem"), cert).expect("write apiserver.pem");
        std::fs::write(self.path("apiserver-key.pem"), key).expect("write apiserver-key.pem");
        std::fs::write(self.path("sa.key"), &self.sa_key_pem).expect("write sa.key");
        std::fs::write(self.path("sa.pub"), sa_key.public_key_pem()).expect("write sa.pub");
        let tokens = format!("{},admin,admin,system:masters\n", self.admin_token);
        std::fs::write(self.path("tokens.csv"), tokens).expect("write tokens.csv");
        self.write_kubeconfig(&self.kubeconfig_path(), &self.admin_token);
        self.write_webhook_client_files();
    }

    /// The API server presents a client certificate to every admission webhook (the `"*"` user of
    /// its webhook kubeconfig), issued by a CA of its own: webhooks that authenticate the API
    /// server (the registrar's webhook mode) trust [`Cluster::webhook_client_ca_path`].
    fn write_webhook_client_files(&self) {
        let ca = TestCa::new("spire-rs test webhook client CA");
        let (cert, key) = ca.client_cert("kube-apiserver-webhook-client");
        std::fs::write(self.webhook_client_ca_path(), &ca.cert_pem).expect("write webhook client CA");
        std::fs::write(self.path("webhook-client.pem"), cert).expect("write webhook client cert");
        std::fs::write(self.path("webhook-client-key.pem"), key).expect("write webhook client key");
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nusers:\n- name: \"*\"\n  user:\n    client-certificate: {}\n    client-key: {}\n",
            self.path("webhook-client.pem").display(),
            self.path("webhook-client-key.pem").display(),
        );
        std::fs::write(self.path("webhook-client.kubeconfig"), kubeconfig).expect("write webhook kubeconfig");
        let plugin = |name: &str| {
            format!(
                "- name: {name}\n  configuration:\n    apiVersion: apiserver.config.k8s.io/v1\n    kind: WebhookAdmissionConfiguration\n    kubeConfigFile: {}\n",
                self.path("webhook-client.kubeconfig").display()
            )
        };
        let admission = format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n{}{}",
            plugin("ValidatingAdmissionWebhook"),
            plugin("MutatingAdmissionWebhook"),
        );
        std::fs::write(self.path("admission.yaml"), admission).expect("write admission config");
    }

    /// The CA of the client certificate the API server presents to admission webhooks.
    pub fn webhook_client_ca_path(&self) -> PathBuf {
        self.path("webhook-client-ca.pem")
    }

    fn spawn(&self, name: &str, program: &Path, args: Vec<String>) {
        let log = std::fs::File::create(self.path(&format!("{name}.log"))).expect("create a log file");
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "KILL", "--"])
            .arg(program)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        let child = crate::databases::spawn_tied(cmd).unwrap_or_else(|e| panic!("start {name}: {e}"));
        self.children.lock().expect("children").push(child);
    }

    fn start_etcd(&self, etcd: &Path) -> u16 {
        let (client, peer) = (free_port(), free_port());
        let args = vec![
            format!("--data-dir={}", self.path("etcd").display()),
            format!("--listen-client-urls=http://127.0.0.1:{client}"),
            format!("--advertise-client-urls=http://127.0.0.1:{client}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
            format!("--initial-cluster=default=http://127.0.0.1:{peer}"),
            "--listen-metrics-urls=".into(),
            // Tests don't need durability; fsync would dominate on a shared disk.
            "--unsafe-no-fsync".into(),
            "--log-level=warn".into(),
        ];
        self.spawn("etcd", etcd, args);
        self.wait_port("etcd", client);
        client
    }

    fn start_apiserver(&self, apiserver: &Path, etcd_port: u16) {
        let p = |n: &str| self.path(n).display().to_string();
        let args = vec![
            format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            format!("--secure-port={}", self.port),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--tls-cert-file={}", p("apiserver.pem")),
            format!("--tls-private-key-file={}", p("apiserver-key.pem")),
            format!("--client-ca-file={}", p("ca.pem")),
            format!("--token-auth-file={}", p("tokens.csv")),
            "--authorization-mode=RBAC".into(),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            format!("--service-account-issuer={}", self.issuer()),
            format!("--service-account-key-file={}", p("sa.pub")),
            format!("--service-account-signing-key-file={}", p("sa.key")),
            "--allow-privileged=true".into(),
            "--enable-priority-and-fairness=false".into(),
            "--profiling=false".into(),
            format!("--cert-dir={}", p("certs")),
            format!("--admission-control-config-file={}", p("admission.yaml")),
        ];
        self.spawn("kube-apiserver", apiserver, args);
    }

    fn start_controller_manager(&self, kcm: &Path) {
        let p = |n: &str| self.path(n).display().to_string();
        let args = vec![
            format!("--kubeconfig={}", self.kubeconfig_path().display()),
            "--leader-elect=false".into(),
            "--secure-port=0".into(),
            "--controllers=serviceaccount-controller,namespace-controller,garbage-collector-controller,endpoints-controller,endpointslice-controller,root-ca-certificate-publisher-controller".into(),
            format!("--root-ca-file={}", p("ca.pem")),
            format!("--service-account-private-key-file={}", p("sa.key")),
            "--use-service-account-credentials=false".into(),
        ];
        self.spawn("kube-controller-manager", kcm, args);
    }

    fn wait_port(&self, name: &str, port: u16) {
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{name} did not listen on {port}:\n{}", self.log(name));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `/readyz` says ok (the bootstrap controllers have run).
    async fn wait_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let client = self.client().await;
        loop {
            let req = http::Request::get("/readyz").body(Vec::new()).expect("request");
            if let Ok(body) = client.request_text(req).await
                && body.trim() == "ok"
            {
                return;
            }
            assert!(Instant::now() < deadline, "kube-apiserver is not ready:\n{}", self.log("kube-apiserver"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What a process of the cluster logged (`etcd`, `kube-apiserver`, `kube-controller-manager`).
    pub fn log(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.path(&format!("{name}.log"))).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The service-account issuer (`--service-account-issuer`): the API server's own URL.
    pub fn issuer(&self) -> String {
        self.url()
    }

    /// The CA that signed the API server's certificate (PEM).
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// `ca.pem` on disk.
    pub fn ca_path(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// The service-account signing key (PKCS#8 PEM, ECDSA P-256), to mint tokens the API server
    /// will judge.
    pub fn service_account_key_pem(&self) -> &str {
        &self.sa_key_pem
    }

    /// A bearer token in `system:masters`.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// A kubeconfig file for the admin token.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.path("admin.kubeconfig")
    }

    /// Writes a kubeconfig for this cluster that authenticates with `token`.
    pub fn write_kubeconfig(&self, path: &Path, token: &str) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: user\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: user\ncurrent-context: test\n",
            self.url(),
            self.ca_path().display()
        );
        std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// A client with the admin token.
    pub async fn client(&self) -> Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig_path()).expect("read the kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("kubeconfig to client config");
        Client::try_from(config).expect("kube client")
    }

    /// Debian's `kubectl` with the admin kubeconfig and `args`; `None` (skipped) if it is not
    /// installed and peers are not required.
    pub fn kubectl(&self, args: &[&str]) -> Option<std::process::Output> {
        let kubectl = which("kubectl");
        if kubectl.is_none() {
            assert!(!peers::required(), "kubectl is missing: apt-get install kubectl");
            eprintln!("skipped: kubectl is not installed (apt-get install kubectl)");
            return None;
        }
        let out = Command::new(kubectl.expect("checked"))
            .arg(format!("--kubeconfig={}", self.kubeconfig_path().display()))
            .args(args)
            .output()
            .expect("run kubectl");
        Some(out)
    }

    /// The server's `NodeAttestor "k8s_psat"` block knowing this control plane as cluster `name`
    /// (through the admin kubeconfig) and allowing the `spire:spire-agent` service account;
    /// `extra` lines go into the cluster's block (`allowed_node_label_keys = [...]`, say).
    pub fn server_k8s_psat_plugin(&self, name: &str, extra: &str) -> String {
        format!(
            r#"    NodeAttestor "k8s_psat" {{
        plugin_data {{
            clusters = {{
                "{name}" = {{
                    service_account_allow_list = ["spire:spire-agent"]
                    kube_config_file = "{kubeconfig}"
                    {extra}
                }}
            }}
        }}
    }}
"#,
            kubeconfig = self.kubeconfig_path().display(),
        )
    }

    /// Creates namespace `name` unless it exists.
    pub async fn ensure_namespace(&self, name: &str) {
        let api: Api<Namespace> = Api::all(self.client().await);
        let ns = serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
        create_or_keep(api.create(&PostParams::default(), &ns).await);
    }

    /// Creates service account `ns/name` (and the namespace) unless it exists.
    pub async fn ensure_service_account(&self, ns: &str, name: &str) {
        self.ensure_namespace(ns).await;
        let api: Api<ServiceAccount> = Api::namespaced(self.client().await, ns);
        let sa = serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}})).expect("sa");
        create_or_keep(api.create(&PostParams::default(), &sa).await);
    }

    /// Creates a Node with `labels` and InternalIP 127.0.0.1.
    pub async fn create_node(&self, name: &str, labels: &[(&str, &str)]) -> Node {
        let api: Api<Node> = Api::all(self.client().await);
        let labels: serde_json::Map<String, serde_json::Value> =
            labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        let node = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).expect("node");
        let created = api.create(&PostParams::default(), &node).await.expect("create node");
        let status = json!({"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("node status");
        created
    }

    /// Creates a Pod bound to `node` running `containers` (name, image) as service account `sa`.
    pub async fn create_pod(&self, spec: PodSpec<'_>) -> Pod {
        self.ensure_service_account(spec.namespace, spec.service_account).await;
        let api: Api<Pod> = Api::namespaced(self.client().await, spec.namespace);
        let labels: serde_json::Map<String, serde_json::Value> =
            spec.labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        let containers: Vec<_> = spec.containers.iter().map(|(n, i)| json!({"name": n, "image": i})).collect();
        let node = (!spec.node.is_empty()).then_some(spec.node);
        let pod = serde_json::from_value(json!({
            "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": labels},
            "spec": {
                "nodeName": node,
                "serviceAccountName": spec.service_account,
                "automountServiceAccountToken": false,
                "containers": containers,
            }
        }))
        .expect("pod");
        api.create(&PostParams::default(), &pod).await.expect("create pod")
    }

    /// Schedules the unscheduled `pod` on `node` through the `binding` subresource, as the
    /// scheduler does (`spec.nodeName` cannot be changed otherwise).
    pub async fn bind_pod(&self, pod: &Pod, node: &str) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let api: Api<Pod> = Api::namespaced(self.client().await, ns);
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": pod_name(pod), "namespace": ns},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        let _: serde_json::Value = api
            .create_subresource("binding", pod_name(pod), &PostParams::default(), &binding)
            .await
            .expect("bind the pod");
    }

    /// Marks `pod` Running on 127.0.0.1 with a status per container: (name, container ID such as
    /// `docker://<id>`, image ID).
    pub async fn set_pod_running(&self, pod: &Pod, containers: &[(&str, &str, &str)]) -> Pod {
        let (ns, name) = (pod.metadata.namespace.as_deref().unwrap_or("default"), pod_name(pod));
        let images: std::collections::HashMap<&str, &str> = pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .map(|c| (c.name.as_str(), c.image.as_deref().unwrap_or_default()))
            .collect();
        let statuses: Vec<_> = containers
            .iter()
            .map(|(n, id, image_id)| {
                json!({
                    "name": n, "containerID": id, "image": images.get(n).copied().unwrap_or_default(),
                    "imageID": image_id, "ready": true, "restartCount": 0, "started": true,
                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
                })
            })
            .collect();
        let status = json!({"status": {
            "phase": "Running", "hostIP": "127.0.0.1", "podIP": "10.1.0.2",
            "containerStatuses": statuses,
        }});
        let api: Api<Pod> = Api::namespaced(self.client().await, ns);
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("pod status")
    }

    /// Deletes `pod` at once (no kubelet will confirm a graceful deletion).
    pub async fn delete_pod(&self, pod: &Pod) {
        let api: Api<Pod> =
            Api::namespaced(self.client().await, pod.metadata.namespace.as_deref().unwrap_or("default"));
        let params = kube::api::DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
        api.delete(pod_name(pod), &params).await.expect("delete pod");
    }

    /// A projected service-account token for `sa` bound to `pod`, from the TokenRequest API, as
    /// the kubelet asks for it for a projected volume.
    pub async fn pod_token(&self, sa: &str, pod: &Pod, audiences: &[&str], seconds: i64) -> String {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let api: Api<ServiceAccount> = Api::namespaced(self.client().await, ns);
        let request: TokenRequest = serde_json::from_value(json!({
            "spec": {
                "audiences": audiences,
                "expirationSeconds": seconds,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod_name(pod), "uid": pod.metadata.uid},
            }
        }))
        .expect("token request");
        let created = api.create_token_request(sa, &PostParams::default(), &request).await.expect("TokenRequest");
        created.status.and_then(|s| s.token).expect("a token in the TokenRequest status")
    }

    /// A token for `sa` in `ns` not bound to any object.
    pub async fn service_account_token(&self, ns: &str, sa: &str, audiences: &[&str]) -> String {
        self.ensure_service_account(ns, sa).await;
        let api: Api<ServiceAccount> = Api::namespaced(self.client().await, ns);
        let request: TokenRequest =
            serde_json::from_value(json!({"spec": {"audiences": audiences, "expirationSeconds": 3600}}))
                .expect("token request");
        let created = api.create_token_request(sa, &PostParams::default(), &request).await.expect("TokenRequest");
        created.status.and_then(|s| s.token).expect("a token in the TokenRequest status")
    }
}

/// The agent's `NodeAttestor "k8s_psat"` block: cluster `cluster`, the projected token at `token_path`.
pub fn agent_k8s_psat_plugin(cluster: &str, token_path: &Path) -> String {
    format!(
        "    NodeAttestor \"k8s_psat\" {{\n        plugin_data {{\n            cluster = \"{cluster}\"\n            token_path = \"{}\"\n        }}\n    }}\n",
        token_path.display()
    )
}

/// What [`Cluster::create_pod`] creates.
#[derive(Debug, Clone, Copy)]
pub struct PodSpec<'a> {
    /// Namespace (created if missing).
    pub namespace: &'a str,
    /// Pod name.
    pub name: &'a str,
    /// Service account (created if missing).
    pub service_account: &'a str,
    /// `spec.nodeName`; empty for a pod not scheduled yet (see [`Cluster::bind_pod`]).
    pub node: &'a str,
    /// Labels.
    pub labels: &'a [(&'a str, &'a str)],
    /// Containers: (name, image).
    pub containers: &'a [(&'a str, &'a str)],
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().expect("pod name")
}

fn create_or_keep<T>(result: Result<T, kube::Error>) {
    match result {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("create: {e}"),
    }
}

/// `name` on `PATH`.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
