//! `mode = "webhook"` end to end: the real API server calls our registrar's admission webhook over
//! TLS with its client certificate (issued by [`Cluster::webhook_client_ca_path`]'s CA) when pods are
//! created and deleted; the registrar writes SPIRE's entries; our agent serves the pod's workload.

use std::time::Duration;

use serde_json::json;
use spire_testkit::kube::Cluster;
use spire_testkit::process::free_port;

use super::{Registrar, ShownEntry, WebhookRegistration, entries, entries_in_namespace, eventually};
use crate::agent_server::{OurAgent, OurServer};
use crate::k8s::World;

/// Pods created in the webhook's namespace get SPIRE's webhook-mode entries (under the cluster's
/// node entry, created at start), their workloads get the SVID from our agent, deleting the pod
/// removes the entry, and a client without the API server's certificate is refused.
#[tokio::test(flavor = "multi_thread")]
async fn api_server_admissions_register_pods() {
    let tag = "reg-webhook";
    let Some(mut world) = World::new(tag).await else { return };
    let Some((server, agent, _)) = world.start_pair::<OurServer, OurAgent>(tag, "").await else { return };
    let namespace = "reg-webhook";
    let (cert, key) = world.cluster.ca().server_cert(&[]);
    let cert_path = world.dir.path().join("webhook.pem");
    let key_path = world.dir.path().join("webhook-key.pem");
    std::fs::write(&cert_path, cert).expect("write cert");
    std::fs::write(&key_path, key).expect("write key");
    let port = free_port();
    let mode = format!(
        "mode = \"webhook\"\naddr = \"127.0.0.1:{port}\"\ncert_path = \"{}\"\nkey_path = \"{}\"\ncacert_path = \"{}\"\n",
        cert_path.display(),
        key_path.display(),
        world.cluster.webhook_client_ca_path().display(),
    );
    let registrar = Registrar::start(&world, &server, namespace, &mode).await;

    // The cluster's node entry, created at start.
    let node_id = format!("spiffe://example.org/k8s-workload-registrar/{}/node", world.name);
    let node_entry = eventually(
        "the node entry",
        Duration::from_secs(30),
        || entries(&server).into_iter().find(|e| e.spiffe_id == node_id),
        || registrar.log(),
    )
    .await;
    assert_eq!(node_entry.parent_id, "spiffe://example.org/spire/server");
    assert_eq!(node_entry.selectors, [format!("k8s_psat:cluster:{}", world.name)].into_iter().collect());

    let webhook = json!({
        "name": "k8s-workload-registrar.spire.svc",
        "rules": [{
            "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "DELETE"],
            "resources": ["pods"], "scope": "Namespaced",
        }],
    });
    let registration_name = format!("k8s-workload-registrar-{namespace}");
    let _registration =
        WebhookRegistration::create(world.cluster, &registration_name, namespace, "/validate", port, webhook).await;
    // The API server picks new webhook configurations up within a moment; until then a pod is
    // admitted without a call. Probe with throwaway pods until one gets its entry.
    let socket_name = agent.socket.file_name().expect("socket name").to_string_lossy().into_owned();
    let mut probe = 0;
    eventually(
        "the API server to call the webhook",
        Duration::from_secs(30),
        || {
            probe += 1;
            let name = format!("probe-{probe}");
            let pod = futures_block(world.cluster.create_pod(spire_testkit::kube::PodSpec {
                namespace,
                name: &name,
                service_account: "default",
                node: world.node_name(),
                labels: &[],
                containers: &[("main", "busybox")],
            }));
            std::thread::sleep(Duration::from_millis(300));
            let found = entries_in_namespace(&server, namespace)
                .iter()
                .any(|e| e.selectors.contains(&format!("k8s:pod-name:{name}")));
            futures_block(world.cluster.delete_pod(&pod));
            found.then_some(())
        },
        || registrar.log(),
    )
    .await;

    // A workload pod: exactly SPIRE's webhook-mode entry, and its SVID.
    let (pod, container) = world.workload(namespace, "web-0", "blog", &[("app", "web")], &agent.socket).await;
    let workload_id = format!("spiffe://example.org/ns/{namespace}/sa/blog");
    let entry = eventually(
        "the pod's entry",
        Duration::from_secs(10),
        || entries_in_namespace(&server, namespace).into_iter().find(|e| e.selectors.contains("k8s:pod-name:web-0")),
        || registrar.log(),
    )
    .await;
    assert_eq!(
        entry.shape(),
        (
            workload_id.clone(),
            node_id.clone(),
            [format!("k8s:ns:{namespace}"), "k8s:pod-name:web-0".to_owned()].into_iter().collect(),
            vec![]
        ),
        "{entry:?}"
    );
    if let Err(said) = world.fetch_until(&container, &socket_name, &workload_id).await {
        panic!("the workload never got {workload_id}: {said}\n--- agent ---\n{}", agent.log());
    }

    // Dry runs change nothing: the live pod keeps its entry, a pod that never was gets none.
    let dry_delete = world.cluster.kubectl(&["delete", "pod", "web-0", "-n", namespace, "--dry-run=server"]);
    let dry_create = world.cluster.kubectl(&[
        "run",
        "dry-pod",
        "--image=busybox",
        "--restart=Never",
        "-n",
        namespace,
        "--dry-run=server",
    ]);
    for out in [dry_delete, dry_create].into_iter().flatten() {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let now = entries_in_namespace(&server, namespace);
    assert!(
        now.iter().any(|e| e.selectors.contains("k8s:pod-name:web-0")),
        "a dry-run delete removed the entry: {now:#?}"
    );
    assert!(
        !now.iter().any(|e| e.selectors.contains("k8s:pod-name:dry-pod")),
        "a dry-run create made an entry: {now:#?}"
    );

    // Deleting the pod removes its entry (and only its).
    world.cluster.delete_pod(&pod).await;
    eventually(
        "the pod's entry to be deleted",
        Duration::from_secs(10),
        || {
            let left: Vec<ShownEntry> = entries_in_namespace(&server, namespace);
            (!left.iter().any(|e| e.selectors.contains("k8s:pod-name:web-0"))).then_some(())
        },
        || registrar.log(),
    )
    .await;
    assert!(entries(&server).iter().any(|e| e.spiffe_id == node_id), "the node entry stays");

    // Without the API server's client certificate, no admission review gets in.
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(world.cluster.ca_path())
        .args(["-X", "POST", "-H", "Content-Type: application/json", "-d", "{}"])
        .arg(format!("https://127.0.0.1:{port}/validate"))
        .output();
    if let Ok(out) = out {
        let code = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!out.status.success() || code == "000", "a client without a certificate got HTTP {code}");
    }
}

/// Runs a future to completion from synchronous code inside the multi-threaded test runtime.
fn futures_block<F: std::future::Future>(future: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}

/// `deploy/k8s/registrar/webhook` and the API objects `generate-config` prints (ConfigMap, Secret,
/// ValidatingWebhookConfiguration) pass the real API server's validation (`--dry-run=server`,
/// strict), and the shipped registrar configuration is one our registrar accepts.
#[tokio::test(flavor = "multi_thread")]
async fn webhook_manifests_and_generated_config_apply() {
    let Some(cluster) = Cluster::shared().await else { return };
    cluster.ensure_namespace("spire").await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s/registrar/webhook");
    let dir = dir.canonicalize().expect("deploy/k8s/registrar/webhook").display().to_string();
    let Some(out) = cluster.kubectl(&["apply", "-k", &dir, "--dry-run=server", "--validate=strict", "-o", "json"])
    else {
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let applied: serde_json::Value = serde_json::from_str(&stdout).expect("kubectl's JSON");
    let items = applied["items"].as_array().cloned().unwrap_or_default();
    let conf = items
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "k8s-workload-registrar")
        .and_then(|o| o["data"]["k8s-workload-registrar.conf"].as_str())
        .expect("the registrar's ConfigMap")
        .to_owned();
    let parsed = spire_k8s_registrar::config::Config::parse(&conf).expect("the shipped configuration is valid");
    assert_eq!(parsed.mode.name(), "webhook");
    let statefulset = items.iter().find(|o| o["kind"] == "StatefulSet").expect("the server StatefulSet");
    let containers = statefulset["spec"]["template"]["spec"]["containers"].as_array().expect("containers");
    assert!(containers.iter().any(|c| c["name"] == "k8s-workload-registrar"), "the sidecar");

    let generated = std::process::Command::new(spire_testkit::peers::workspace_binary("k8s-workload-registrar"))
        .args(["generate-config", "-namespace", "spire"])
        .output()
        .expect("run generate-config");
    assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));
    let yaml = String::from_utf8(generated.stdout).expect("UTF-8");
    // The kubeconfig and the AdmissionConfiguration are files for the API server, not API objects.
    let objects: Vec<&str> = yaml
        .split("\n---\n")
        .filter(|d| {
            ["ConfigMap", "Secret", "ValidatingWebhookConfiguration"]
                .iter()
                .any(|k| d.contains(&format!("\nkind: {k}\n")))
        })
        .collect();
    assert_eq!(objects.len(), 3, "{yaml}");
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), objects.join("\n---\n")).expect("write");
    let path = file.path().display().to_string();
    let out = cluster.kubectl(&["apply", "-f", &path, "--dry-run=server", "--validate=strict"]).expect("kubectl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
