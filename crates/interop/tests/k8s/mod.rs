//! Kubernetes end to end, for any pairing of servers and agents ([`ServerUnderTest`],
//! [`AgentUnderTest`]): a real API server (etcd, kube-apiserver, controller manager), a Node and a
//! Pod for the agent, a projected service-account token from the TokenRequest API for that pod,
//! `k8s_psat` node attestation, and workloads in real Docker containers laid out in cgroups as the
//! kubelet lays out a pod's containers, which a stand-in kubelet reports in its `/pods`.
//!
//! Each test builds its own [`World`] (its own node, cluster name and kubelet) on the cluster and
//! Docker engine its test binary shares, so tests run side by side.

// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use spire_testkit::agent::AgentOptions;
use spire_testkit::docker::{Container, Dockerd};
use spire_testkit::kube::{Cluster, PodSpec, agent_k8s_psat_plugin};
use spire_testkit::kubelet::Kubelet;
use spire_testkit::peers;
use tokio::sync::OnceCell;

use crate::agent_server::{AgentUnderTest, ServerSetup, ServerUnderTest};

/// The image workloads run in: busybox and a stripped copy of our `spire-agent` (its `api fetch`
/// is the Workload API client), imported once per test process.
pub(crate) const WORKLOAD_IMAGE: &str = "spire-rs-workload:test";
/// Where the agent's socket directory is mounted in workload containers.
pub(crate) const SOCKET_DIR: &str = "/run/spire/sockets";
/// The audience k8s_psat tokens are requested for (SPIRE's default).
pub(crate) const AUDIENCE: &str = "spire-server";

/// One test's slice of the shared cluster.
pub(crate) struct World {
    pub(crate) cluster: &'static Cluster,
    pub(crate) docker: &'static Dockerd,
    /// The cluster's name in the server's `clusters` and the agent's `cluster`.
    pub(crate) name: String,
    pub(crate) node: Node,
    pub(crate) kubelet: Kubelet,
    pub(crate) dir: tempfile::TempDir,
    image_id: String,
    containers: Vec<String>,
}

impl Drop for World {
    fn drop(&mut self) {
        for id in &self.containers {
            self.docker.remove(id);
        }
    }
}

/// The shared cluster and Docker engine with the workload image, or `None` when a peer is missing
/// (skipped).
async fn shared() -> Option<(&'static Cluster, &'static Dockerd, String)> {
    let cluster = Cluster::shared().await?;
    let docker = Dockerd::shared().await?;
    Some((cluster, docker, workload_image(docker).await))
}

/// [`WORKLOAD_IMAGE`] (busybox and a stripped copy of our `spire-agent`) in `docker`, imported once
/// per test process; its image ID.
pub(crate) async fn workload_image(docker: &'static Dockerd) -> String {
    static IMAGE: OnceCell<String> = OnceCell::const_new();
    IMAGE
        .get_or_init(|| async move {
            tokio::task::spawn_blocking(move || {
                let stripped = docker.dir().join("spire-agent");
                let status = std::process::Command::new("strip")
                    .arg("-o")
                    .arg(&stripped)
                    .arg(peers::workspace_binary("spire-agent"))
                    .status()
                    .expect("run strip");
                assert!(status.success(), "strip spire-agent");
                docker.import_image(WORKLOAD_IMAGE, &[(&stripped, "/opt/spire/bin/spire-agent")])
            })
            .await
            .expect("import the workload image")
        })
        .await
        .clone()
}

impl World {
    /// A node `node-<tag>` labelled `zone=<tag>`, a kubelet for it, and the cluster name
    /// `cluster-<tag>`; `None` when skipped.
    pub(crate) async fn new(tag: &str) -> Option<World> {
        let (cluster, docker, image_id) = shared().await?;
        let node = cluster.create_node(&format!("node-{tag}"), &[("zone", tag)]).await;
        let kubelet = Kubelet::start(cluster, node.metadata.name.as_deref().expect("node name")).await;
        Some(World {
            cluster,
            docker,
            name: format!("cluster-{tag}"),
            node,
            kubelet,
            dir: tempfile::tempdir().expect("tempdir"),
            image_id,
            containers: Vec::new(),
        })
    }

    pub(crate) fn node_name(&self) -> &str {
        self.node.metadata.name.as_deref().expect("node name")
    }

    /// The image ID of the workload image, for pod container statuses.
    pub(crate) fn image_id(&self) -> &str {
        &self.image_id
    }

    pub(crate) fn node_uid(&self) -> &str {
        self.node.metadata.uid.as_deref().expect("node uid")
    }

    /// The agent ID k8s_psat gives an agent on this world's node.
    pub(crate) fn agent_id(&self) -> String {
        format!("spiffe://example.org/spire/agent/k8s_psat/{}/{}", self.name, self.node_uid())
    }

    /// The server's `NodeAttestor "k8s_psat"` block for this world's cluster: the agent service
    /// account allowed, the admin kubeconfig, node label `zone` and pod label `app` allowed.
    pub(crate) fn server_setup(&self) -> ServerSetup {
        let extra = "allowed_node_label_keys = [\"zone\"]\n                    allowed_pod_label_keys = [\"app\"]";
        let plugin = self.cluster.server_k8s_psat_plugin(&self.name, extra);
        ServerSetup { extra_plugins: plugin, ..ServerSetup::default() }
    }

    /// The agent's pod: `spire/<name>` with service account `sa` on this world's node, running.
    pub(crate) async fn agent_pod(&self, name: &str, sa: &str) -> Pod {
        let pod = self
            .cluster
            .create_pod(PodSpec {
                namespace: "spire",
                name,
                service_account: sa,
                node: self.node_name(),
                labels: &[("app", "spire-agent")],
                containers: &[("spire-agent", "ghcr.io/spire-rs/spire-agent:0.1.0")],
            })
            .await;
        self.cluster.set_pod_running(&pod, &[]).await
    }

    /// Writes `token` to a file (as the kubelet writes a projected token volume) and returns its path.
    pub(crate) fn token_file(&self, name: &str, token: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, token).expect("write token");
        path
    }

    /// Agent options attesting through k8s_psat with the token at `token_path` as cluster `cluster`,
    /// with the k8s workload attestor pointed at this world's kubelet (authenticating with
    /// `kubelet_token`) and the unix one.
    pub(crate) fn agent_options(&self, cluster: &str, token_path: &Path, kubelet_token: &Path) -> AgentOptions {
        let attestors = format!(
            r#"{node_attestor}    WorkloadAttestor "k8s" {{
        plugin_data {{
            kubelet_secure_port = {port}
            kubelet_ca_path = "{ca}"
            token_path = "{kubelet_token}"
            max_poll_attempts = 20
            poll_retry_interval = "250ms"
        }}
    }}
    WorkloadAttestor "unix" {{
        plugin_data {{}}
    }}"#,
            node_attestor = agent_k8s_psat_plugin(cluster, token_path),
            port = self.kubelet.port,
            ca = self.cluster.ca_path().display(),
            kubelet_token = kubelet_token.display(),
        );
        AgentOptions {
            sync_interval: "500ms".into(),
            discover_workload_path: false,
            attestors: Some(attestors),
            ..AgentOptions::default()
        }
    }

    /// A running workload: a pod `ns/name` (service account `sa`, `labels`) on this world's node
    /// whose container runs in a real Docker container under the pod's cgroup, with the agent's
    /// socket directory mounted at [`SOCKET_DIR`]. Returns the pod and the container ID.
    pub(crate) async fn workload(
        &mut self,
        ns: &str,
        name: &str,
        sa: &str,
        labels: &[(&str, &str)],
        agent_socket: &Path,
    ) -> (Pod, String) {
        let pod = self
            .cluster
            .create_pod(PodSpec {
                namespace: ns,
                name,
                service_account: sa,
                node: self.node_name(),
                labels,
                containers: &[("main", WORKLOAD_IMAGE)],
            })
            .await;
        let id = self.container_in(&pod, &format!("{ns}-{name}"), agent_socket);
        let pod = self.cluster.set_pod_running(&pod, &[("main", &format!("docker://{id}"), &self.image_id)]).await;
        (pod, id)
    }

    /// A container of the workload image in `pod`'s cgroup (whether or not the pod's status lists
    /// it), with the agent's socket directory mounted at [`SOCKET_DIR`]; removed with the world.
    pub(crate) fn container_in(&mut self, pod: &Pod, name: &str, agent_socket: &Path) -> String {
        let parent = format!("/kubepods/besteffort/pod{}", pod.metadata.uid.as_deref().expect("pod uid"));
        let socket_dir = agent_socket.parent().expect("socket dir").display().to_string();
        let id = self.docker.run_sleeping(&Container {
            image: WORKLOAD_IMAGE,
            name: &format!("{}-{name}", self.name),
            volumes: &[format!("{socket_dir}:{SOCKET_DIR}")],
            cgroup_parent: Some(&parent),
            lifetime: Duration::from_secs(600),
        });
        self.containers.push(id.clone());
        id
    }

    /// `spire-agent api fetch x509` inside container `id`, against the mounted agent socket.
    pub(crate) fn fetch_x509(&self, id: &str, socket_name: &str) -> Output {
        let socket = format!("{SOCKET_DIR}/{socket_name}");
        self.docker.exec(id, &["/opt/spire/bin/spire-agent", "api", "fetch", "x509", "-socketPath", &socket])
    }

    /// [`World::fetch_x509`]: whether it succeeded, and all it printed.
    pub(crate) fn fetch_output(&self, id: &str, socket_name: &str) -> (bool, String) {
        let out = self.fetch_x509(id, socket_name);
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }

    /// Starts `S` with this world's k8s_psat cluster (and `extra_config` in its `server` block), and
    /// `A` in a pod `spire/spire-agent-<tag>` of service account `spire-agent`, attesting with that
    /// pod's projected token (file `agent-token`, audience [`AUDIENCE`]); the kubelet takes the pod's
    /// ordinary token (the API server's own audience), as the default `token_path`, the mounted
    /// service-account token, is. `None` when a binary is a missing peer (skipped).
    pub(crate) async fn start_pair<S: ServerUnderTest, A: AgentUnderTest>(
        &self,
        tag: &str,
        extra_config: &str,
    ) -> Option<(S, A, Pod)> {
        let (server_bin, agent_bin) = (S::binary()?, A::binary()?);
        let mut setup = self.server_setup();
        setup.extra_config = extra_config.to_owned();
        let server = S::start(&server_bin, &setup).await;
        let agent_pod = self.agent_pod(&format!("spire-agent-{tag}"), "spire-agent").await;
        let token = self.cluster.pod_token("spire-agent", &agent_pod, &[AUDIENCE], 3600).await;
        let token_path = self.token_file("agent-token", &token);
        let kubelet_token = self.cluster.pod_token("spire-agent", &agent_pod, &[], 3600).await;
        let kubelet_token = self.token_file("kubelet-token", &kubelet_token);
        let options = self.agent_options(&self.name, &token_path, &kubelet_token);
        let agent = A::start(&agent_bin, &self.dir.path().join("agent"), server.port, &options).await;
        Some((server, agent, agent_pod))
    }

    /// Registers `spiffe://example.org/k8s-cluster/<cluster>`, a node alias for every agent this
    /// world's cluster attests (`k8s_psat:cluster:<cluster>`), and returns it.
    pub(crate) fn node_alias<S: ServerUnderTest>(&self, server: &S) -> String {
        let alias = format!("spiffe://example.org/k8s-cluster/{}", self.name);
        let selector = format!("k8s_psat:cluster:{}", self.name);
        server.cli(&["entry", "create", "-node", "-spiffeID", &alias, "-selector", &selector]);
        alias
    }

    /// Retries [`World::fetch_x509`] until it prints `spiffe_id` (the entry reached the agent), for
    /// up to 30 s; the last output if it never does.
    pub(crate) async fn fetch_until(&self, id: &str, socket_name: &str, spiffe_id: &str) -> Result<String, String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.fetch_x509(id, socket_name);
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() && stdout.contains(spiffe_id) {
                return Ok(stdout);
            }
            if Instant::now() >= deadline {
                return Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The whole flow on one pairing: the agent attests through k8s_psat with its pod's projected
/// token; `agent show` lists its k8s_psat ID and selectors; a node alias on the cluster and an entry
/// selecting `k8s:ns:default`, `k8s:sa:default` and `k8s:pod-label:app:web` give that SVID to a
/// workload in a container of a matching pod, and nothing to a container of a pod in another
/// namespace.
pub(crate) async fn attests_and_serves_pods<S: ServerUnderTest, A: AgentUnderTest>(tag: &str) {
    let Some(mut world) = World::new(tag).await else { return };
    let Some((server, agent, agent_pod)) = world.start_pair::<S, A>(tag, "").await else { return };

    // The agent, as the server knows it.
    let agent_id = world.agent_id();
    let shown = server.cli(&["agent", "show", "-spiffeID", &agent_id]);
    let pod_name = agent_pod.metadata.name.clone().expect("name");
    let pod_uid = agent_pod.metadata.uid.clone().expect("uid");
    for selector in [
        format!("k8s_psat:cluster:{}", world.name),
        "k8s_psat:agent_ns:spire".into(),
        "k8s_psat:agent_sa:spire-agent".into(),
        format!("k8s_psat:agent_pod_name:{pod_name}"),
        format!("k8s_psat:agent_pod_uid:{pod_uid}"),
        "k8s_psat:agent_node_ip:127.0.0.1".into(),
        format!("k8s_psat:agent_node_name:{}", world.node_name()),
        format!("k8s_psat:agent_node_uid:{}", world.node_uid()),
        format!("k8s_psat:agent_node_label:zone:{tag}"),
        "k8s_psat:agent_pod_label:app:spire-agent".into(),
    ] {
        assert!(shown.contains(&selector), "{} lacks {selector}:\n{shown}", S::NAME);
    }
    assert!(shown.contains("k8s_psat"), "{shown}");
    let listed = server.cli(&["agent", "list"]);
    assert!(listed.contains(&agent_id) && listed.contains("k8s_psat"), "{listed}");
    // Listed by its selectors too: the node's label, the cluster and the agent's namespace.
    let by_selectors = server.cli(&[
        "agent",
        "list",
        "-selector",
        &format!("k8s_psat:cluster:{}", world.name),
        "-selector",
        &format!("k8s_psat:agent_node_label:zone:{tag}"),
        "-selector",
        "k8s_psat:agent_ns:spire",
        "-matchSelectorsOn",
        "superset",
    ]);
    assert!(by_selectors.contains(&agent_id), "{by_selectors}");
    let none = server.cli(&["agent", "list", "-selector", "k8s_psat:agent_ns:kube-system"]);
    assert!(!none.contains(&agent_id), "{none}");

    // A node alias for every agent of the cluster, and a workload entry under it.
    let alias = world.node_alias(&server);
    let web_id = format!("spiffe://example.org/{tag}/web");
    server.cli(&[
        "entry",
        "create",
        "-parentID",
        &alias,
        "-spiffeID",
        &web_id,
        "-selector",
        "k8s:ns:default",
        "-selector",
        "k8s:sa:default",
        "-selector",
        "k8s:pod-label:app:web",
    ]);

    let socket_name = agent.socket.file_name().expect("socket name").to_string_lossy().into_owned();
    let (_, web) = world.workload("default", &format!("web-{tag}"), "default", &[("app", "web")], &agent.socket).await;
    if let Err(said) = world.fetch_until(&web, &socket_name, &web_id).await {
        panic!("the workload never got {web_id} from {}: {said}\n--- agent ---\n{}", A::NAME, agent.log());
    }

    // Same labels and service account name, another namespace: no identity.
    let (_, other) = world.workload("other", &format!("api-{tag}"), "default", &[("app", "web")], &agent.socket).await;
    let (ok, said) = world.fetch_output(&other, &socket_name);
    assert!(!ok && said.contains("PermissionDenied"), "{said}\n{}", agent.log());
    assert!(!said.contains(&web_id), "{said}");
}

/// `token` (a service-account JWT from the API server) with its claims moved `by` seconds into the
/// past and signed again with the cluster's service-account key: a token the API server itself
/// would have issued, now expired.
pub(crate) fn backdated(cluster: &Cluster, token: &str, by: i64) -> String {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    let header: serde_json::Value = serde_json::from_slice(&engine.decode(parts[0]).expect("header")).expect("json");
    let mut claims: serde_json::Value =
        serde_json::from_slice(&engine.decode(parts[1]).expect("claims")).expect("json");
    for claim in ["exp", "iat", "nbf"] {
        let t = claims[claim].as_i64().expect("a time claim");
        claims[claim] = serde_json::json!(t - by);
    }
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = header["kid"].as_str().map(str::to_owned);
    let key = jsonwebtoken::EncodingKey::from_ec_pem(cluster.service_account_key_pem().as_bytes()).expect("SA key");
    jsonwebtoken::encode(&h, &claims, &key).expect("sign")
}

/// Bad evidence, each refused by the server with a message that says what is wrong, which the agent
/// prints as it exits: a token for another audience, an expired token, a service account not on the
/// allow list, a token whose pod was deleted, and a cluster the server does not know.
pub(crate) async fn refuses_bad_evidence<S: ServerUnderTest, A: AgentUnderTest>(tag: &str) {
    let Some(world) = World::new(tag).await else { return };
    let (Some(server_bin), Some(agent_bin)) = (S::binary(), A::binary()) else { return };
    let server = S::start(&server_bin, &world.server_setup()).await;
    let cluster = world.cluster;

    let agent_pod = world.agent_pod(&format!("spire-agent-{tag}"), "spire-agent").await;
    let good = cluster.pod_token("spire-agent", &agent_pod, &[AUDIENCE], 3600).await;
    let intruder = world.agent_pod(&format!("intruder-{tag}"), "intruder").await;
    let doomed = world.agent_pod(&format!("doomed-{tag}"), "spire-agent").await;
    let doomed_token = cluster.pod_token("spire-agent", &doomed, &[AUDIENCE], 3600).await;
    cluster.delete_pod(&doomed).await;

    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "wrong audience",
            cluster.pod_token("spire-agent", &agent_pod, &["not-spire"], 3600).await,
            &world.name,
            "audience",
        ),
        ("expired", backdated(cluster, &good, 7200), &world.name, "expired"),
        (
            "service account not allowed",
            cluster.pod_token("intruder", &intruder, &[AUDIENCE], 3600).await,
            &world.name,
            "\"spire:intruder\" is not an allowed service account",
        ),
        ("deleted pod", doomed_token, &world.name, "service account token has been invalidated"),
        ("unknown cluster", good.clone(), "no-such-cluster", "not configured for cluster \"no-such-cluster\""),
    ];
    for (case, token, cluster_name, says) in cases {
        // The server allows one attestation per second from an address (SPIRE's rate limit).
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let token_path = world.token_file(&format!("token-{}", case.replace(' ', "-")), &token);
        let options = world.agent_options(cluster_name, &token_path, &token_path);
        let dir = world.dir.path().join(case.replace(' ', "-"));
        let mut agent = A::launch(&agent_bin, &dir, server.port, &options);
        let status = agent.wait_exit(Duration::from_secs(30)).await;
        let log = agent.log();
        assert!(status.is_some_and(|s| !s.success()), "{case}: {} did not fail:\n{log}", A::NAME);
        assert!(
            log.contains(says),
            "{case}: {} does not say {says:?}:\n{log}\n--- server ---\n{}",
            A::NAME,
            server.log()
        );
    }
    let listed = server.cli(&["agent", "list"]);
    assert!(!listed.contains("k8s_psat"), "no agent may have attested:\n{listed}");
}

/// The `Serial number` line of `agent show`.
fn serial(shown: &str) -> String {
    shown.lines().find(|l| l.starts_with("Serial number")).unwrap_or_default().to_owned()
}

/// A k8s_psat agent renews its short-lived SVID by attesting again with its (re-read) projected
/// token, not with RenewAgent: the server shows the same agent ID with a new serial number, still
/// re-attestable, and workloads keep getting their SVIDs.
pub(crate) async fn reattests_instead_of_renewing<S: ServerUnderTest, A: AgentUnderTest>(tag: &str) {
    let Some(mut world) = World::new(tag).await else { return };
    let Some((server, agent, agent_pod)) = world.start_pair::<S, A>(tag, "agent_ttl = \"20s\"").await else { return };
    let token_path = world.dir.path().join("agent-token");

    let agent_id = world.agent_id();
    let first = server.cli(&["agent", "show", "-spiffeID", &agent_id]);
    assert!(first.contains("Can re-attest     : true"), "{first}");
    // The kubelet rotates projected tokens; the agent must read the file again when it re-attests.
    let fresh = world.cluster.pod_token("spire-agent", &agent_pod, &[AUDIENCE], 3600).await;
    std::fs::write(&token_path, fresh).expect("rotate the token");

    let deadline = Instant::now() + Duration::from_secs(40);
    let second = loop {
        let shown = server.cli(&["agent", "show", "-spiffeID", &agent_id]);
        if serial(&shown) != serial(&first) {
            break shown;
        }
        assert!(Instant::now() < deadline, "{} never re-attested:\n{}", A::NAME, agent.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(second.contains("Can re-attest     : true"), "{second}");
    assert!(second.contains("k8s_psat:agent_sa:spire-agent"), "{second}");

    let alias = world.node_alias(&server);
    let web_id = format!("spiffe://example.org/{tag}/web");
    server.cli(&["entry", "create", "-parentID", &alias, "-spiffeID", &web_id, "-selector", "k8s:ns:default"]);
    let socket_name = agent.socket.file_name().expect("socket name").to_string_lossy().into_owned();
    let (_, web) = world.workload("default", &format!("web-{tag}"), "default", &[], &agent.socket).await;
    if let Err(said) = world.fetch_until(&web, &socket_name, &web_id).await {
        panic!("after re-attesting, {} serves nothing: {said}\n{}", A::NAME, agent.log());
    }
}

/// Workload attestation cannot be fooled by a cgroup path: a container placed under a pod's cgroup
/// that the kubelet does not list among that pod's containers gets no k8s selectors (so no SVID),
/// and neither does a pod on another node, which this node's kubelet does not list at all.
pub(crate) async fn pods_cannot_borrow_identities<S: ServerUnderTest, A: AgentUnderTest>(tag: &str) {
    let Some(mut world) = World::new(tag).await else { return };
    let Some((server, agent, _)) = world.start_pair::<S, A>(tag, "").await else { return };
    let alias = world.node_alias(&server);
    let web_id = format!("spiffe://example.org/{tag}/web");
    server.cli(&["entry", "create", "-parentID", &alias, "-spiffeID", &web_id, "-selector", "k8s:pod-label:app:web"]);
    let socket_name = agent.socket.file_name().expect("socket name").to_string_lossy().into_owned();
    let (web_pod, web) =
        world.workload("default", &format!("web-{tag}"), "default", &[("app", "web")], &agent.socket).await;
    if let Err(said) = world.fetch_until(&web, &socket_name, &web_id).await {
        panic!("{} serves nothing to the real pod: {said}\n{}", A::NAME, agent.log());
    }

    // An imposter in the web pod's cgroup, not among its container statuses.
    let imposter = world.container_in(&web_pod, "imposter", &agent.socket);
    let (ok, said) = world.fetch_output(&imposter, &socket_name);
    assert!(!ok && !said.contains(&web_id), "the imposter got an identity: {said}");

    // A pod with the right label on another node: this node's kubelet does not know it.
    let elsewhere = world.cluster.create_node(&format!("node-{tag}-2"), &[]).await;
    let pod = world
        .cluster
        .create_pod(PodSpec {
            namespace: "default",
            name: &format!("web-{tag}-elsewhere"),
            service_account: "default",
            node: elsewhere.metadata.name.as_deref().expect("name"),
            labels: &[("app", "web")],
            containers: &[("main", WORKLOAD_IMAGE)],
        })
        .await;
    let stray = world.container_in(&pod, "elsewhere", &agent.socket);
    world.cluster.set_pod_running(&pod, &[("main", &format!("docker://{stray}"), &world.image_id)]).await;
    let (ok, said) = world.fetch_output(&stray, &socket_name);
    assert!(!ok && !said.contains(&web_id), "a pod of another node got an identity: {said}");
}
