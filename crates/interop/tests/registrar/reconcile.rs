//! `mode = "reconcile"` end to end: our registrar watching the real API server's Nodes and Pods and
//! writing SPIRE v1.3.6's entries to our server; our agent, attested with k8s_psat on the test's node,
//! serving the pod's workload; drift (entries deleted, changed or orphaned by hand, changes while the
//! registrar was down) converging within one resync; leader election; metrics.

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use spire_testkit::kube::PodSpec;
use spire_testkit::process::free_port;

use super::{Registrar, ShownEntry, entries, entries_in_namespace, eventually};
use spire_testkit::upstream::UpstreamServer;

use crate::agent_server::{OurAgent, OurServer, ServerUnderTest};
use crate::k8s::World;

/// One resync (10 s) and some slack for a loaded machine.
const ONE_RESYNC: Duration = Duration::from_secs(20);

/// The mode's configuration: metrics off (tests run side by side), plus `extra`.
fn mode(extra: &str) -> String {
    format!("mode = \"reconcile\"\nmetrics_addr = \"0\"\n{extra}")
}

/// `spiffe://example.org/spire-k8s-registrar/<cluster>/node`.
fn root(world: &World) -> String {
    format!("spiffe://example.org/spire-k8s-registrar/{}/node", world.name)
}

/// The shape of the node entry for `world`'s node.
fn node_shape(world: &World) -> (String, String, BTreeSet<String>, Vec<String>) {
    (
        format!("{}/{}", root(world), world.node_name()),
        "spiffe://example.org/spire/server".into(),
        [format!("k8s_psat:agent_node_name:{}", world.node_name()), format!("k8s_psat:cluster:{}", world.name)]
            .into_iter()
            .collect(),
        Vec::new(),
    )
}

/// The shape of the entry of pod `ns/name` (service account `sa`) on `world`'s node.
fn pod_shape(world: &World, ns: &str, name: &str, sa: &str) -> (String, String, BTreeSet<String>, Vec<String>) {
    (
        format!("spiffe://example.org/ns/{ns}/sa/{sa}"),
        format!("{}/{}", root(world), world.node_name()),
        [format!("k8s:ns:{ns}"), format!("k8s:pod-name:{name}")].into_iter().collect(),
        Vec::new(),
    )
}

/// The entries whose SPIFFE ID is `world`'s node entry's.
fn node_entries<S: ServerUnderTest>(server: &S, world: &World) -> Vec<ShownEntry> {
    let id = node_shape(world).0;
    entries(server).into_iter().filter(|e| e.spiffe_id == id).collect()
}

/// A plain pod `ns/name` of service account `sa` on `world`'s node (no container runs).
async fn pod(world: &World, ns: &str, name: &str, sa: &str) -> Pod {
    world
        .cluster
        .create_pod(PodSpec {
            namespace: ns,
            name,
            service_account: sa,
            node: world.node_name(),
            labels: &[],
            containers: &[("main", "busybox")],
        })
        .await
}

/// Our server with `world`'s k8s_psat cluster, without an agent.
async fn server_only(world: &World) -> OurServer {
    let bin = <OurServer as ServerUnderTest>::binary().expect("our server");
    OurServer::start(&bin, &world.server_setup()).await
}

/// Waits until the pod entries of `ns` have exactly `shapes`, for up to `timeout`.
async fn wait_for_pods<S: ServerUnderTest>(
    server: &S,
    registrar: &Registrar,
    ns: &str,
    shapes: &[(String, String, BTreeSet<String>, Vec<String>)],
    timeout: Duration,
    what: &str,
) -> Vec<ShownEntry> {
    let mut want: Vec<_> = shapes.to_vec();
    want.sort();
    eventually(
        what,
        timeout,
        || {
            let found = entries_in_namespace(server, ns);
            let mut got: Vec<_> = found.iter().map(ShownEntry::shape).collect();
            got.sort();
            (got == want).then_some(found)
        },
        || {
            format!(
                "want {want:#?}\nhave {:#?}\n--- registrar ---\n{}",
                entries_in_namespace(server, ns),
                registrar.log()
            )
        },
    )
    .await
}

/// A Deployment-style pod (nodeName set) gets exactly SPIRE's node and pod entries, its workload
/// gets the SVID from our agent, and deleting the pod deletes its entry.
#[tokio::test(flavor = "multi_thread")]
async fn reconcile_registers_nodes_and_pods_and_the_agent_serves_them() {
    registers_nodes_and_pods::<OurServer>("rec-basic").await;
}

/// The same against SPIRE v1.13.3's server: our registrar speaks SPIRE's Entry API over its admin
/// socket, and the entries it writes are the ones SPIRE's CLI shows.
#[tokio::test(flavor = "multi_thread")]
async fn reconcile_registers_pods_in_spire_server() {
    registers_nodes_and_pods::<UpstreamServer>("rec-spire").await;
}

async fn registers_nodes_and_pods<S: ServerUnderTest>(tag: &str) {
    let Some(mut world) = World::new(tag).await else { return };
    let Some((server, agent, _)) = world.start_pair::<S, OurAgent>(tag, "").await else { return };
    let ns = tag;
    let registrar = Registrar::start(&world, &server, ns, &mode("")).await;

    let node = eventually(
        "the node entry",
        Duration::from_secs(20),
        || Some(node_entries(&server, &world)).filter(|e| !e.is_empty()),
        || registrar.log(),
    )
    .await;
    assert_eq!(node.len(), 1, "{node:#?}");
    assert_eq!(node[0].shape(), node_shape(&world));

    // Latency: pod created (already scheduled) to entry in the server, polled through the CLI.
    let start = Instant::now();
    let quick = pod(&world, ns, "quick", "quick-sa").await;
    wait_for_pods(
        &server,
        &registrar,
        ns,
        &[pod_shape(&world, ns, "quick", "quick-sa")],
        Duration::from_secs(5),
        "the pod entry",
    )
    .await;
    // Latency is measured by `benches/registrar_latency.rs`, not asserted here.
    eprintln!("pod -> entry (including CLI polling): {:?}", start.elapsed());
    world.cluster.delete_pod(&quick).await;
    wait_for_pods(&server, &registrar, ns, &[], Duration::from_secs(5), "the deleted pod's entry to go").await;

    // A workload in a real container gets its SVID through the node entry.
    let socket_name = agent.socket.file_name().expect("socket name").to_string_lossy().into_owned();
    let (web, container) = world.workload(ns, "web-7d9f", "web", &[("app", "web")], &agent.socket).await;
    let shape = pod_shape(&world, ns, "web-7d9f", "web");
    let shown =
        wait_for_pods(&server, &registrar, ns, std::slice::from_ref(&shape), Duration::from_secs(5), "the web entry")
            .await;
    assert!(shown[0].federates_with.is_empty(), "{shown:#?}");
    if let Err(said) = world.fetch_until(&container, &socket_name, &shape.0).await {
        panic!(
            "the workload never got {}: {said}\n--- agent ---\n{}\n--- registrar ---\n{}",
            shape.0,
            agent.log(),
            registrar.log()
        );
    }
    assert_eq!(node_entries(&server, &world).len(), 1);

    world.cluster.delete_pod(&web).await;
    wait_for_pods(&server, &registrar, ns, &[], Duration::from_secs(5), "the web entry to go").await;
    assert!(registrar.log().contains("Created new spire entry"), "{}", registrar.log());
}

/// A StatefulSet's pod deleted and recreated at once under the same name ends with its entry.
#[tokio::test(flavor = "multi_thread")]
async fn reconcile_keeps_the_entry_of_a_recreated_statefulset_pod() {
    let tag = "rec-sts";
    let Some(world) = World::new(tag).await else { return };
    let server = server_only(&world).await;
    let ns = tag;
    let registrar = Registrar::start(&world, &server, ns, &mode("")).await;
    let shape = pod_shape(&world, ns, "db-0", "db");
    let first = pod(&world, ns, "db-0", "db").await;
    let before =
        wait_for_pods(&server, &registrar, ns, std::slice::from_ref(&shape), Duration::from_secs(20), "db-0's entry")
            .await;
    world.cluster.delete_pod(&first).await;
    let _second = pod(&world, ns, "db-0", "db").await;
    // Let the delete and create events play out, then the entry must be there, once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = wait_for_pods(
        &server,
        &registrar,
        ns,
        std::slice::from_ref(&shape),
        Duration::from_secs(5),
        "db-0's entry after",
    )
    .await;
    eprintln!("entry before {} after {}", before[0].id, after[0].id);
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_for_pods(&server, &registrar, ns, &[shape], Duration::from_secs(1), "db-0's entry to stay").await;
}

/// Hand edits and outages converge within one resync: an entry deleted by hand is recreated, one
/// changed by hand is restored (in place), one for a pod that does not exist is deleted, and pods
/// deleted and created while the registrar was down are reflected once it is back.
#[tokio::test(flavor = "multi_thread")]
async fn reconcile_converges_drift_and_outages() {
    let tag = "rec-drift";
    let Some(world) = World::new(tag).await else { return };
    let server = server_only(&world).await;
    let ns = tag;
    let mut registrar = Registrar::start(&world, &server, ns, &mode("")).await;
    let mut pods = Vec::new();
    for name in ["a", "b", "c"] {
        pods.push(pod(&world, ns, name, name).await);
    }
    let shapes = |names: &[&str]| names.iter().map(|n| pod_shape(&world, ns, n, n)).collect::<Vec<_>>();
    let found =
        wait_for_pods(&server, &registrar, ns, &shapes(&["a", "b", "c"]), Duration::from_secs(20), "a, b, c").await;
    let id_of = |pod: &str| {
        found.iter().find(|e| e.selectors.contains(&format!("k8s:pod-name:{pod}"))).expect("entry").id.clone()
    };
    let (a, b) = (id_of("a"), id_of("b"));
    let parent = format!("{}/{}", root(&world), world.node_name());

    server.cli(&["entry", "delete", "-entryID", &a]);
    server.cli(&[
        "entry",
        "update",
        "-entryID",
        &b,
        "-parentID",
        &parent,
        "-spiffeID",
        "spiffe://example.org/changed-by-hand",
        "-selector",
        &format!("k8s:ns:{ns}"),
        "-selector",
        "k8s:pod-name:b",
    ]);
    server.cli(&[
        "entry",
        "create",
        "-parentID",
        &parent,
        "-spiffeID",
        "spiffe://example.org/ghost",
        "-selector",
        &format!("k8s:ns:{ns}"),
        "-selector",
        "k8s:pod-name:ghost",
    ]);
    let start = Instant::now();
    let healed = wait_for_pods(&server, &registrar, ns, &shapes(&["a", "b", "c"]), ONE_RESYNC, "drift to heal").await;
    eprintln!("drift healed in {:?}", start.elapsed());
    assert!(healed.iter().any(|e| e.id == b), "b's entry is updated in place: {healed:#?}");
    assert!(!healed.iter().any(|e| e.id == a), "a's entry is a new one: {healed:#?}");

    // Down while c goes and d comes; back, it converges.
    registrar.stop();
    world.cluster.delete_pod(&pods[2]).await;
    pod(&world, ns, "d", "d").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    registrar.restart();
    wait_for_pods(&server, &registrar, ns, &shapes(&["a", "b", "d"]), ONE_RESYNC, "convergence after a restart").await;
}

/// With `leader_election`, of two registrars in one namespace only the Lease holder writes; when it
/// is killed, the other takes over.
#[tokio::test(flavor = "multi_thread")]
async fn reconcile_leader_election_one_writes_the_other_takes_over() {
    let tag = "rec-leader";
    let Some(world) = World::new(tag).await else { return };
    let server = server_only(&world).await;
    let ns = tag;
    let config = mode("leader_election = true\ncontroller_name = \"rec-leader\"");
    let root = format!("spiffe://example.org/rec-leader/{}/node/{}", world.name, world.node_name());
    let shape = |name: &str| {
        (
            format!("spiffe://example.org/ns/{ns}/sa/{name}"),
            root.clone(),
            [format!("k8s:ns:{ns}"), format!("k8s:pod-name:{name}")].into_iter().collect::<BTreeSet<_>>(),
            Vec::<String>::new(),
        )
    };
    let mut first = Registrar::start(&world, &server, ns, &config).await;
    pod(&world, ns, "one", "one").await;
    wait_for_pods(&server, &first, ns, &[shape("one")], Duration::from_secs(30), "the leader's entry").await;
    let second = Registrar::start_instance(&world, &server, ns, "-2", &config).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(first.log().contains("successfully acquired lease"), "{}", first.log());
    let log = second.log();
    assert!(log.contains("attempting to acquire leader lease"), "{log}");
    assert!(!log.contains("successfully acquired lease") && !log.contains("Created new spire entry"), "{log}");

    first.stop();
    pod(&world, ns, "two", "two").await;
    let start = Instant::now();
    wait_for_pods(&server, &second, ns, &[shape("one"), shape("two")], Duration::from_secs(45), "the takeover").await;
    eprintln!("took over in {:?}", start.elapsed());
    assert!(second.log().contains("successfully acquired lease"), "{}", second.log());
}

/// Annotation-based IDs (`pod_annotation`): the annotation's value is the path, slashes and all; a
/// pod without the annotation is ignored; a value naming another node's entry (which would make this
/// node's agent an agent of that node) or an invalid path gets no entry, and the log says why.
#[tokio::test(flavor = "multi_thread")]
async fn reconcile_annotation_ids_and_reserved_paths() {
    let tag = "rec-annot";
    let Some(world) = World::new(tag).await else { return };
    let server = server_only(&world).await;
    let ns = tag;
    let registrar = Registrar::start(&world, &server, ns, &mode("pod_annotation = \"spiffe.io/spiffe-id\"\n")).await;
    let other_node = format!("spire-k8s-registrar/{}/node/other-node", world.name);
    let api: kube::Api<Pod> = kube::Api::namespaced(world.cluster.client().await, ns);
    for (name, annotation) in
        [("a", Some("prod/web")), ("b", Some(other_node.as_str())), ("c", None), ("d", Some("prod/../x"))]
    {
        let annotations = annotation.map(|v| serde_json::json!({"spiffe.io/spiffe-id": v}));
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns, "annotations": annotations},
            "spec": {"nodeName": world.node_name(), "containers": [{"name": "main", "image": "busybox"}]},
        }))
        .expect("pod");
        api.create(&kube::api::PostParams::default(), &pod).await.expect("create pod");
    }
    let want = (
        "spiffe://example.org/prod/web".to_owned(),
        format!("{}/{}", root(&world), world.node_name()),
        [format!("k8s:ns:{ns}"), "k8s:pod-name:a".to_owned()].into_iter().collect::<BTreeSet<_>>(),
        Vec::new(),
    );
    wait_for_pods(&server, &registrar, ns, std::slice::from_ref(&want), Duration::from_secs(20), "a's entry only")
        .await;
    eventually(
        "the refusals in the log",
        Duration::from_secs(10),
        || {
            let log = registrar.log();
            (log.contains("reserved") && log.contains("prod/../x")).then_some(())
        },
        || registrar.log(),
    )
    .await;
    // A resync later, still only a's.
    tokio::time::sleep(ONE_RESYNC / 2).await;
    let now: Vec<_> = entries_in_namespace(&server, ns).iter().map(ShownEntry::shape).collect();
    assert_eq!(now, vec![want], "{}", registrar.log());
}

/// `server_address` over TCP: the registrar authenticates to the server with the X509-SVID our agent
/// gives it through the Workload API (an admin entry selecting its uid), as SPIRE's registrar does
/// when it does not run beside the server; an SVID that is not admin gets nothing written.
#[tokio::test(flavor = "multi_thread")]
async fn reconcile_over_mtls_with_an_svid_from_the_agent() {
    use std::os::unix::fs::MetadataExt as _;
    let tag = "rec-mtls";
    let Some(world) = World::new(tag).await else { return };
    let Some((server, agent, _)) = world.start_pair::<OurServer, OurAgent>(tag, "").await else { return };
    let ns = tag;
    let uid = std::fs::metadata("/proc/self").expect("/proc/self").uid();
    let alias = world.node_alias(&server);
    let registrar_id = "spiffe://example.org/k8s-workload-registrar";
    let selector = format!("unix:uid:{uid}");
    let shown =
        server.cli(&["entry", "create", "-parentID", &alias, "-spiffeID", registrar_id, "-selector", &selector]);
    let entry_id = shown
        .lines()
        .find_map(|l| l.strip_prefix("Entry ID"))
        .expect("entry ID")
        .trim_start_matches([' ', ':'])
        .trim()
        .to_owned();
    let config = mode(&format!(
        "server_address = \"127.0.0.1:{}\"\nagent_socket_path = \"{}\"\n",
        server.port,
        agent.socket.display()
    ));

    // Not an admin yet: its calls are refused, and it says so.
    let mut registrar = Registrar::start(&world, &server, ns, &config).await;
    eventually(
        "the refusal",
        Duration::from_secs(30),
        || {
            let log = registrar.log();
            log.contains("authorization denied for method: caller spiffe://example.org/k8s-workload-registrar")
                .then_some(())
        },
        || registrar.log(),
    )
    .await;
    assert!(node_entries(&server, &world).is_empty());
    registrar.stop();

    // An admin: the node entry and the pods' entries are written over mTLS.
    server.cli(&[
        "entry",
        "update",
        "-entryID",
        &entry_id,
        "-parentID",
        &alias,
        "-spiffeID",
        registrar_id,
        "-selector",
        &selector,
        "-admin",
    ]);
    registrar.restart();
    pod(&world, ns, "p", "p").await;
    wait_for_pods(
        &server,
        &registrar,
        ns,
        &[pod_shape(&world, ns, "p", "p")],
        Duration::from_secs(30),
        "p's entry over mTLS",
    )
    .await;
    assert_eq!(node_entries(&server, &world).len(), 1);
}

/// `add_pod_dns_names`: the pod's IP forms first, then, once a Service selects it (its Endpoints
/// written by the controller manager), every name of the service in search-path forms, sorted.
#[tokio::test(flavor = "multi_thread")]
async fn reconcile_adds_pod_and_service_dns_names() {
    let tag = "rec-dns";
    let Some(world) = World::new(tag).await else { return };
    let server = server_only(&world).await;
    let ns = tag;
    let registrar = Registrar::start(&world, &server, ns, &mode("add_pod_dns_names = true\n")).await;
    let pod = world
        .cluster
        .create_pod(PodSpec {
            namespace: ns,
            name: "dns-pod",
            service_account: "dns",
            node: world.node_name(),
            labels: &[("app", "dns")],
            containers: &[("main", "busybox")],
        })
        .await;
    world.cluster.set_pod_running(&pod, &[]).await; // podIP 10.1.0.2
    let ip_forms = vec![format!("10-1-0-2.{ns}.pod.cluster.local"), format!("10-1-0-2.{ns}.pod")];
    let dns_of = || entries_in_namespace(&server, ns).into_iter().next().map(|e| e.dns_names);
    eventually(
        "the pod IP names",
        Duration::from_secs(20),
        || dns_of().filter(|d| *d == ip_forms),
        || format!("{:?}\n{}", dns_of(), registrar.log()),
    )
    .await;

    let services: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(world.cluster.client().await, ns);
    let service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "dnssvc"},
        "spec": {"selector": {"app": "dns"}, "ports": [{"port": 80}], "publishNotReadyAddresses": true},
    }))
    .expect("service");
    services.create(&kube::api::PostParams::default(), &service).await.expect("create the service");
    let names = eventually(
        "the service's names",
        ONE_RESYNC,
        || dns_of().filter(|d| d.iter().any(|n| n.starts_with("dnssvc."))),
        || format!("{:?}\n{}", dns_of(), registrar.log()),
    )
    .await;
    assert_eq!(names[..2], ip_forms[..], "{names:?}");
    let rest = &names[2..];
    assert!(rest.windows(2).all(|w| w[0] < w[1]), "sorted after the IP forms: {names:?}");
    for want in [
        format!("dnssvc.{ns}.svc.cluster.local"),
        format!("dnssvc.{ns}.svc"),
        format!("dnssvc.{ns}"),
        "dnssvc".to_owned(),
        format!("10-1-0-2.dnssvc.{ns}.svc"),
        format!("dns-pod.dnssvc.{ns}.svc"),
    ] {
        assert!(rest.contains(&want), "{want} missing from {names:?}");
    }
}

/// `metrics_addr` serves controller-runtime's reconcile metrics.
#[tokio::test(flavor = "multi_thread")]
async fn reconcile_serves_metrics() {
    let tag = "rec-metrics";
    let Some(world) = World::new(tag).await else { return };
    let server = server_only(&world).await;
    let ns = tag;
    let port = free_port();
    let registrar =
        Registrar::start(&world, &server, ns, &format!("mode = \"reconcile\"\nmetrics_addr = \"127.0.0.1:{port}\""))
            .await;
    pod(&world, ns, "m", "m").await;
    wait_for_pods(&server, &registrar, ns, &[pod_shape(&world, ns, "m", "m")], Duration::from_secs(20), "m's entry")
        .await;
    let text = eventually(
        "the metrics",
        Duration::from_secs(10),
        || {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
            stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
            let mut text = String::new();
            stream.read_to_string(&mut text).ok()?;
            text.contains(r#"controller_runtime_reconcile_total{controller="pod",result="success"}"#).then_some(text)
        },
        || registrar.log(),
    )
    .await;
    assert!(text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(r#"controller_runtime_reconcile_total{controller="node",result="success"}"#), "{text}");
}

/// `deploy/k8s/registrar/reconcile` (the server StatefulSet with the registrar as a sidecar, its
/// RBAC and ConfigMap, over `deploy/k8s/base`) is accepted by the API server.
#[tokio::test(flavor = "multi_thread")]
async fn reconcile_manifests_apply() {
    let Some(cluster) = spire_testkit::kube::Cluster::shared().await else { return };
    cluster.ensure_namespace("spire").await;
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s");
    let dir = deploy.join("registrar/reconcile").display().to_string();
    let Some(out) = cluster.kubectl(&["apply", "-k", &dir, "--dry-run=server", "--validate=strict"]) else { return };
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{said}");
    for object in [
        "clusterrole.rbac.authorization.k8s.io/spire-k8s-registrar",
        "role.rbac.authorization.k8s.io/spire-k8s-registrar-leader-election",
        "configmap/k8s-workload-registrar",
        "statefulset.apps/spire-server",
    ] {
        assert!(said.contains(object), "{object} missing:\n{said}");
    }
    // The rendered StatefulSet has both containers, sharing the admin socket directory.
    let Some(out) = cluster.kubectl(&["kustomize", &dir]) else { return };
    let rendered = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for line in ["name: spire-server\n", "name: k8s-workload-registrar\n", "mountPath: /tmp/spire-server/private"] {
        assert!(rendered.contains(line), "{line:?} missing:\n{rendered}");
    }
    assert_eq!(rendered.matches("mountPath: /tmp/spire-server/private").count(), 2, "{rendered}");
}
