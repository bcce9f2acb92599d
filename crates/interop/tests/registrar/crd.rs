//! `mode = "crd"` end to end: our registrar writes SpiffeIDs for the world's node and pods, keeps
//! an entry per SpiffeID on our server, and our agent serves the pods' workloads; the controller
//! manager's garbage collector deletes a deleted pod's SpiffeID, and the registrar its entry.
//!
//! Every crd registrar writes SpiffeIDs for every pod of the shared cluster, and two of them would
//! fight over the same objects' `status.entryId`: the tests that run one take [`ONE_REGISTRAR`].

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use spire_testkit::kube::{Cluster, PodSpec};
use spire_testkit::process::free_port;
use tokio::sync::{Mutex, MutexGuard, OnceCell};

use super::{Registrar, ShownEntry, WebhookRegistration, entries, eventually};
use crate::agent_server::{OurAgent, OurServer, ServerUnderTest};
use crate::k8s::World;

const CRD_NAME: &str = "spiffeids.spiffeid.spiffe.io";
/// Long enough for a resync (10 s) and the garbage collector's discovery of a new CRD (30 s).
const SLOW: Duration = Duration::from_secs(90);
const QUICK: Duration = Duration::from_secs(30);

static ONE_REGISTRAR: Mutex<()> = Mutex::const_new(());

fn crd_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s/registrar/crd");
    dir.canonicalize().expect("deploy/k8s/registrar/crd")
}

/// Installs our SpiffeID CRD once per process and waits until it is served. `kubectl apply` is
/// idempotent, so another process's install racing this one is retried rather than an error.
pub(crate) async fn install_crd(cluster: &'static Cluster) {
    static INSTALLED: OnceCell<()> = OnceCell::const_new();
    INSTALLED
        .get_or_init(|| async move {
            let file = crd_dir().join("spiffeid-crd.yaml");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let out = cluster.kubectl(&["apply", "-f", &file.to_string_lossy()]).expect("kubectl");
                if out.status.success() {
                    break;
                }
                assert!(Instant::now() < deadline, "apply the CRD: {}", String::from_utf8_lossy(&out.stderr));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let out = cluster
                .kubectl(&["wait", "--for=condition=Established", &format!("crd/{CRD_NAME}"), "--timeout=60s"])
                .expect("kubectl");
            assert!(out.status.success(), "CRD not established: {}", String::from_utf8_lossy(&out.stderr));
        })
        .await;
}

fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("spiffeid.spiffe.io", "v1beta1", "SpiffeID"), "spiffeids")
}

async fn spiffeids(cluster: &Cluster, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(cluster.client().await, namespace, &resource())
}

/// A SpiffeID's `status.entryId`.
fn entry_id(s: &DynamicObject) -> Option<String> {
    s.data["status"]["entryId"].as_str().map(str::to_owned)
}

/// One crd test's world: our server and agent on its node, the registrar in namespace
/// `<tag>-reg`, pods in namespace `<tag>`.
struct Setup {
    world: World,
    server: OurServer,
    agent: OurAgent,
    registrar: Registrar,
    ns: String,
    _one: MutexGuard<'static, ()>,
}

impl Setup {
    async fn start(tag: &str, mode_config: &str) -> Option<Setup> {
        let world = World::new(tag).await?;
        install_crd(world.cluster).await;
        let (server, agent, _) = world.start_pair::<OurServer, OurAgent>(tag, "").await?;
        let one = ONE_REGISTRAR.lock().await;
        let ns = tag.to_owned();
        world.cluster.ensure_namespace(&ns).await;
        let metrics = if mode_config.contains("metrics_bind_addr") { "" } else { "metrics_bind_addr = \"0\"\n" };
        let config = format!("mode = \"crd\"\n{metrics}{mode_config}");
        let registrar = Registrar::start(&world, &server, &format!("{tag}-reg"), &config).await;
        Some(Setup { world, server, agent, registrar, ns, _one: one })
    }

    fn node_id(&self) -> String {
        format!("spiffe://example.org/k8s-workload-registrar/{}/node/{}", self.world.name, self.world.node_name())
    }

    /// The entries of this test's node: its node entry and the entries parented to it.
    fn node_entries(&self) -> Vec<ShownEntry> {
        let node_id = self.node_id();
        entries(&self.server).into_iter().filter(|e| e.spiffe_id == node_id || e.parent_id == node_id).collect()
    }

    /// The entry of pod `uid`, if any.
    fn pod_entry(&self, uid: &str) -> Option<ShownEntry> {
        let selector = format!("k8s:pod-uid:{uid}");
        let found: Vec<_> = entries(&self.server).into_iter().filter(|e| e.selectors.contains(&selector)).collect();
        assert!(found.len() <= 1, "several entries for pod {uid}: {found:#?}");
        found.into_iter().next()
    }

    fn describe(&self) -> String {
        format!("entries: {:#?}\n--- registrar ---\n{}", entries(&self.server), tail(&self.registrar.log()))
    }

    /// A pod `name` on this test's node (no container), with label `app=<name>`.
    async fn pod(&self, name: &str) -> Pod {
        self.world
            .cluster
            .create_pod(PodSpec {
                namespace: &self.ns,
                name,
                service_account: "default",
                node: self.world.node_name(),
                labels: &[("app", name)],
                containers: &[("main", "busybox")],
            })
            .await
    }

    /// Waits for the entry of `pod` and returns it.
    async fn wait_pod_entry(&self, pod: &Pod, timeout: Duration) -> ShownEntry {
        let uid = pod.metadata.uid.clone().expect("uid");
        eventually(&format!("the entry of pod {uid}"), timeout, || self.pod_entry(&uid), || self.describe()).await
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().expect("uid")
}

/// A pod yields exactly SPIRE's node entry and pod entry, SpiffeIDs with their entry IDs, and the
/// workload its SVID; a Service adds its DNS name (removed with the Service); a pod recreated under the same name ends with
/// its entry; a deleted pod's SpiffeID and entry go.
#[tokio::test(flavor = "multi_thread")]
async fn crd_pods_get_entries_svids_and_service_names() {
    let Some(mut s) = Setup::start("crd-pods", "").await else { return };
    let cluster = s.world.cluster;
    let (node, node_uid, cluster_name) =
        (s.world.node_name().to_owned(), s.world.node_uid().to_owned(), s.world.name.clone());

    // The registrar is up once the node's SpiffeID has its entry.
    let node_id = s.node_id();
    eventually(
        "the node entry",
        SLOW,
        || s.node_entries().into_iter().find(|e| e.spiffe_id == node_id),
        || s.describe(),
    )
    .await;

    let started = Instant::now();
    let socket_name = s.agent.socket.file_name().expect("socket").to_string_lossy().into_owned();
    let (web, container) = s.world.workload(&s.ns, "web", "default", &[("app", "web")], &s.agent.socket).await;
    let pod_entry = s.wait_pod_entry(&web, QUICK).await;
    eprintln!(
        "crd: pod entry {:?} after the pod was created (upper bound, includes starting its container)",
        started.elapsed()
    );

    let workload_id = format!("spiffe://example.org/ns/{}/sa/default", s.ns);
    let selectors = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
    let expected_node = (
        node_id.clone(),
        "spiffe://example.org/spire/server".to_owned(),
        selectors(&[format!("k8s_psat:cluster:{cluster_name}"), format!("k8s_psat:agent_node_uid:{node_uid}")]),
        vec![],
    );
    let expected_pod = (
        workload_id.clone(),
        node_id.clone(),
        selectors(&[format!("k8s:pod-uid:{}", uid(&web)), format!("k8s:ns:{}", s.ns), format!("k8s:node-name:{node}")]),
        vec!["web".to_owned()],
    );
    // The node's entries, but for the agent's own pod (in namespace spire, on this node too).
    let ns_spire = "k8s:ns:spire".to_owned();
    let shapes: BTreeSet<_> =
        s.node_entries().iter().filter(|e| !e.selectors.contains(&ns_spire)).map(ShownEntry::shape).collect();
    assert_eq!(shapes, BTreeSet::from([expected_node, expected_pod]), "{}", s.describe());

    // The SpiffeIDs, with their entries' IDs and the finalizer.
    let pod_ids = spiffeids(cluster, &s.ns).await;
    let web_spiffeid = pod_ids.get("web").await.expect("the pod's SpiffeID");
    assert_eq!(entry_id(&web_spiffeid).as_deref(), Some(pod_entry.id.as_str()));
    assert_eq!(web_spiffeid.metadata.labels.as_ref().and_then(|l| l.get("podUid")), Some(&uid(&web)));
    assert!(web_spiffeid.metadata.finalizers.iter().flatten().any(|f| f == "finalizers.spiffeid.spiffe.io"));
    let node_spiffeid = spiffeids(cluster, &s.registrar.namespace).await.get(&node).await.expect("the node's SpiffeID");
    let node_entry = s.node_entries().into_iter().find(|e| e.spiffe_id == node_id).expect("node entry");
    assert_eq!(entry_id(&node_spiffeid).as_deref(), Some(node_entry.id.as_str()));

    // The workload gets its SVID from our agent.
    if let Err(said) = s.world.fetch_until(&container, &socket_name, &workload_id).await {
        panic!("the workload never got {workload_id}: {said}\n{}\n--- agent ---\n{}", s.describe(), s.agent.log());
    }

    // A Service selecting the pod adds <svc>.<ns>.svc.
    let services: Api<Service> = Api::namespaced(cluster.client().await, &s.ns);
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "websvc"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], "publishNotReadyAddresses": true},
    }))
    .expect("service");
    services.create(&PostParams::default(), &service).await.expect("create the service");
    let svc_name = format!("websvc.{}.svc", s.ns);
    let web_uid = uid(&web);
    eventually(
        "the service's DNS name",
        QUICK,
        || s.pod_entry(&web_uid).filter(|e| e.dns_names == ["web".to_owned(), svc_name.clone()]),
        || s.describe(),
    )
    .await;
    // The Service gone (and with it its Endpoints): the name goes too.
    services.delete("websvc", &DeleteParams::default()).await.expect("delete the service");
    eventually(
        "the service's DNS name to go",
        QUICK,
        || s.pod_entry(&web_uid).filter(|e| e.dns_names == ["web".to_owned()]),
        || s.describe(),
    )
    .await;

    // A StatefulSet's pod deleted and created again at once: the new pod ends with its entry.
    let db = s.pod("db-0").await;
    s.wait_pod_entry(&db, QUICK).await;
    cluster.delete_pod(&db).await;
    let db_again = s.pod("db-0").await;
    assert_ne!(uid(&db), uid(&db_again));
    s.wait_pod_entry(&db_again, SLOW).await;
    let old_uid = uid(&db);
    eventually("the old db-0 entry to go", SLOW, || s.pod_entry(&old_uid).is_none().then_some(()), || s.describe())
        .await;
    let db_spiffeid = pod_ids.get("db-0").await.expect("db-0's SpiffeID");
    assert_eq!(db_spiffeid.metadata.labels.as_ref().and_then(|l| l.get("podUid")), Some(&uid(&db_again)));

    // A deleted pod: the garbage collector deletes its SpiffeID, the registrar its entry.
    cluster.delete_pod(&web).await;
    eventually("the pod's entry to go", SLOW, || s.pod_entry(&web_uid).is_none().then_some(()), || s.describe()).await;
    let deadline = Instant::now() + SLOW;
    while pod_ids.get_opt("web").await.expect("get").is_some() {
        assert!(Instant::now() < deadline, "the SpiffeID of the deleted pod stays");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `GET /metrics` on `port`: the body.
fn scrape(port: u16) -> String {
    use std::io::{Read as _, Write as _};
    let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = tcp.read_to_string(&mut text);
    text
}

/// Drift: an entry deleted by hand comes back, an entry changed by hand is restored, and a
/// registrar killed while pods change converges once restarted (after taking over its Lease: it
/// runs with leader election, and serves controller-runtime's reconcile metrics), and a pod created
/// while the server is down gets its entry once the server is back.
#[tokio::test(flavor = "multi_thread")]
async fn crd_entries_converge_after_drift_and_restart() {
    let metrics_port = free_port();
    let config = format!("leader_election = true\nmetrics_bind_addr = \"127.0.0.1:{metrics_port}\"");
    let Some(mut s) = Setup::start("crd-drift", &config).await else { return };
    let cluster = s.world.cluster;
    let app = s.pod("app").await;
    let first = s.wait_pod_entry(&app, SLOW).await;
    let app_ids = spiffeids(cluster, &s.ns).await;

    // It leads through its Lease, and counts its reconciliations.
    let leases: Api<Lease> = Api::namespaced(cluster.client().await, &s.registrar.namespace);
    let lease = leases.get("spire-k8s-registrar-leader-election").await.expect("the Lease");
    assert!(lease.spec.and_then(|l| l.holder_identity).is_some_and(|h| !h.is_empty()));
    let metrics = scrape(metrics_port);
    assert!(
        metrics.contains(r#"controller_runtime_reconcile_total{controller="spiffeid",result="success"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"controller_runtime_reconcile_total{controller="pod",result="success"}"#), "{metrics}");

    // Deleted by hand: recreated, and the SpiffeID points to the new entry.
    s.server.cli(&["entry", "delete", "-entryID", &first.id]);
    let app_uid = uid(&app);
    let second = eventually(
        "the entry deleted by hand to come back",
        QUICK,
        || s.pod_entry(&app_uid).filter(|e| e.id != first.id),
        || s.describe(),
    )
    .await;
    assert_eq!(second.shape(), first.shape());
    let deadline = Instant::now() + QUICK;
    loop {
        let obj = app_ids.get("app").await.expect("app SpiffeID");
        if entry_id(&obj).as_deref() == Some(second.id.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "status.entryId not updated: {:?}", obj.data["status"]);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Changed by hand: restored in place.
    let mut args =
        vec!["entry", "update", "-entryID", &second.id, "-spiffeID", &second.spiffe_id, "-parentID", &second.parent_id];
    let selectors: Vec<String> = second.selectors.iter().cloned().collect();
    for selector in &selectors {
        args.extend(["-selector", selector.as_str()]);
    }
    args.extend(["-dns", "hacked"]);
    s.server.cli(&args);
    assert_eq!(s.pod_entry(&app_uid).expect("entry").dns_names, ["hacked"]);
    eventually(
        "the entry changed by hand to be restored",
        QUICK,
        || s.pod_entry(&app_uid).filter(|e| e.dns_names == ["app"] && e.id == second.id),
        || s.describe(),
    )
    .await;

    // Killed while a pod comes and another goes; restarted, it catches up.
    s.registrar.stop();
    let late = s.pod("late").await;
    cluster.delete_pod(&app).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(s.pod_entry(&uid(&late)).is_none(), "no registrar, no entry");
    s.registrar.restart();
    s.wait_pod_entry(&late, SLOW).await;
    eventually(
        "the deleted pod's entry to go",
        SLOW,
        || s.pod_entry(&app_uid).is_none().then_some(()),
        || s.describe(),
    )
    .await;

    // The server down while a pod comes: retried with backoff until it is back.
    s.server.kill();
    let during = s.pod("during-outage").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.server.restart().await;
    s.wait_pod_entry(&during, QUICK).await;

    // How soon an entry follows a pod (nothing else to wait for: no container).
    let started = Instant::now();
    let quick = s.pod("quick").await;
    s.wait_pod_entry(&quick, QUICK).await;
    eprintln!("crd: pod entry {:?} after the pod was created (polling every 100 ms)", started.elapsed());
}

fn hand_written(name: &str, ns: &str, spiffe_id: &str, selector: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "spiffeid.spiffe.io/v1beta1", "kind": "SpiffeID",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "spiffeId": spiffe_id, "parentId": "spiffe://example.org/hand/parent",
            "selector": selector, "dnsNames": ["hand.example"],
        },
    }))
    .expect("SpiffeID")
}

/// A SpiffeID written by hand gets its entry, updated when edited and deleted with it; with
/// `webhook_enabled`, the API server calls the registrar's webhook, which refuses what SPIRE's
/// refuses with SPIRE's messages, and look-alike trust domains and a tenant's downstream entry too.
#[tokio::test(flavor = "multi_thread")]
async fn crd_hand_written_spiffeids_and_the_webhook() {
    let port = free_port();
    let certs = tempfile::tempdir().expect("tempdir");
    let Some(world_cluster) = Cluster::shared().await else { return };
    let (cert, key) = world_cluster.ca().server_cert(&[]);
    std::fs::write(certs.path().join("tls.crt"), cert).expect("tls.crt");
    std::fs::write(certs.path().join("tls.key"), key).expect("tls.key");
    let config = format!(
        "pod_controller = false\nwebhook_enabled = true\nwebhook_port = {port}\nwebhook_cert_dir = \"{}\"",
        certs.path().display()
    );
    let Some(s) = Setup::start("crd-hand", &config).await else { return };
    let cluster = s.world.cluster;
    let webhook = json!({
        "name": "k8s-workload-registrar.spire.svc",
        "rules": [{
            "apiGroups": ["spiffeid.spiffe.io"], "apiVersions": ["v1beta1"],
            "operations": ["CREATE", "UPDATE"], "resources": ["spiffeids"], "scope": "Namespaced",
        }],
    });
    let path = "/validate-spiffeid-spiffe-io-v1beta1-spiffeid";
    let name = format!("k8s-workload-registrar-crd-{}", s.ns);
    let _registration = WebhookRegistration::create(cluster, &name, &s.ns, path, port, webhook).await;
    let api = spiffeids(cluster, &s.ns).await;
    let ns_selector = json!({"namespace": s.ns, "podLabel": {"app": "hand"}});

    // Refusals, once the webhook answers (the API server says so while it cannot reach it).
    let refused = |name: &str, id: &str, selector: Value| hand_written(name, &s.ns, id, selector);
    let deadline = Instant::now() + QUICK;
    let wrong_ns = refused("wrong-ns", "spiffe://example.org/hand/x", json!({"namespace": "elsewhere"}));
    loop {
        let err =
            api.create(&PostParams::default(), &wrong_ns).await.expect_err("a namespace selector of another namespace");
        if err.to_string().contains("spec.Selector.Namespace must match namespace of resource") {
            break;
        }
        assert!(Instant::now() < deadline, "the webhook never refused: {err}\n{}", tail(&s.registrar.log()));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (name, id, selector, says) in [
        ("other-td", "spiffe://other.org/x", ns_selector.clone(), "spec.spiffeId must begin with spiffe://example.org"),
        (
            "look-alike-td",
            "spiffe://example.org.evil/x",
            ns_selector.clone(),
            "spec.spiffeId must be in the trust domain \"example.org\"",
        ),
        (
            "cluster-sel",
            "spiffe://example.org/x",
            json!({"cluster": "c", "namespace": s.ns}),
            "spec.Selector.Cluster and spec.Selector.AgentNodeUid can only be used by the k8s-workload-registrar",
        ),
    ] {
        let err = api.create(&PostParams::default(), &refused(name, id, selector)).await.expect_err(name);
        assert!(err.to_string().contains(says), "{name}: {err}");
    }
    // A tenant may not ask for a downstream entry (its SVID would be a CA of the trust domain).
    let mut downstream = refused("downstream", "spiffe://example.org/hand/ds", ns_selector.clone());
    downstream.data["spec"]["downstream"] = json!(true);
    let err = api.create(&PostParams::default(), &downstream).await.expect_err("a tenant's downstream SpiffeID");
    assert!(err.to_string().contains("spec.downstream can only be used by"), "{err}");

    // Written by hand: its entry.
    let hand_id = "spiffe://example.org/hand/crd-hand";
    api.create(&PostParams::default(), &hand_written("hand", &s.ns, hand_id, ns_selector.clone()))
        .await
        .expect("create");
    let find = || entries(&s.server).into_iter().find(|e| e.spiffe_id == hand_id);
    let entry = eventually("the hand-written SpiffeID's entry", QUICK, find, || s.describe()).await;
    let expected: BTreeSet<String> = [format!("k8s:ns:{}", s.ns), "k8s:pod-label:app:hand".to_owned()].into();
    assert_eq!((entry.parent_id.as_str(), &entry.selectors), ("spiffe://example.org/hand/parent", &expected));
    assert_eq!(entry.dns_names, ["hand.example"]);

    // The same again: a duplicate.
    let err = api
        .create(&PostParams::default(), &hand_written("hand-dup", &s.ns, hand_id, ns_selector.clone()))
        .await
        .expect_err("a duplicate");
    assert!(err.to_string().contains("Duplicate detected"), "{err}");

    // Edited: the entry follows, in place.
    let patch = json!({"spec": {"dnsNames": ["hand2.example"], "selector": {"arbitrary": ["sa:hand"]}}});
    api.patch("hand", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("edit");
    let edited = eventually(
        "the edited entry",
        QUICK,
        || find().filter(|e| e.dns_names == ["hand2.example"] && e.selectors.contains("k8s:sa:hand")),
        || s.describe(),
    )
    .await;
    assert_eq!(edited.id, entry.id);

    // Deleted: the entry goes, then the object (the finalizer is dropped).
    api.delete("hand", &DeleteParams::default()).await.expect("delete");
    eventually("the entry to go", QUICK, || find().is_none().then_some(()), || s.describe()).await;
    let deadline = Instant::now() + QUICK;
    while api.get_opt("hand").await.expect("get").is_some() {
        assert!(Instant::now() < deadline, "the SpiffeID stays after its entry went");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `kubectl apply -k deploy/k8s/registrar/crd --dry-run=server` passes (with the server and agent
/// of deploy/k8s/base), and its StatefulSet is the base's plus the registrar's container and volume.
#[tokio::test(flavor = "multi_thread")]
async fn crd_manifests_pass_a_server_side_dry_run() {
    let Some(cluster) = Cluster::shared().await else { return };
    cluster.ensure_namespace("spire").await;
    let run = |args: &[&str]| -> Option<Value> {
        let out = cluster.kubectl(args)?;
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Some(serde_json::from_slice(&out.stdout).expect("JSON"))
    };
    let dir = crd_dir();
    let Some(rendered) = run(&["apply", "-k", &dir.to_string_lossy(), "--dry-run=server", "-o", "json"]) else {
        return;
    };
    let items = rendered["items"].as_array().expect("a list").clone();
    let kinds: BTreeSet<&str> = items.iter().filter_map(|i| i["kind"].as_str()).collect();
    for kind in [
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "StatefulSet",
    ] {
        assert!(kinds.contains(kind), "{kind} missing: {kinds:?}");
    }
    let config = items
        .iter()
        .find(|i| i["kind"] == "ConfigMap" && i["metadata"]["name"] == "k8s-workload-registrar")
        .expect("the registrar's configmap");
    assert!(config["data"]["k8s-workload-registrar.conf"].as_str().expect("conf").contains("mode = \"crd\""));

    let base =
        dir.join("../../base/server-statefulset.yaml").canonicalize().expect("deploy/k8s/base/server-statefulset.yaml");
    let Some(original) = run(&["apply", "-f", &base.to_string_lossy(), "--dry-run=server", "-o", "json"]) else {
        return;
    };
    let mut with_registrar = items.iter().find(|i| i["kind"] == "StatefulSet").expect("statefulset").clone();
    let spec = &mut with_registrar["spec"]["template"]["spec"];
    let containers = spec["containers"].as_array_mut().expect("containers");
    let sidecar =
        containers.iter().position(|c| c["name"] == "k8s-workload-registrar").expect("the registrar container");
    let sidecar = containers.remove(sidecar);
    assert!(sidecar["volumeMounts"].to_string().contains("/tmp/spire-server/private"), "{sidecar}");
    spec["volumes"].as_array_mut().expect("volumes").retain(|v| v["name"] != "k8s-workload-registrar-config");
    assert_eq!(with_registrar["spec"], original["spec"], "the overlay changes more than the registrar");
}
