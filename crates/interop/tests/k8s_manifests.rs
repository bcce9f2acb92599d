//! `deploy/k8s`: the manifests an operator applies, checked against a real API server (etcd and
//! kube-apiserver v1.36 from the peers, driven with Debian's `kubectl`), so that they stay valid as
//! Kubernetes, the manifests and our binaries change:
//!
//! - `kustomization.yaml` lists every manifest, and `kubectl apply -k --dry-run=server
//!   --validate=strict` accepts them all (schemas, unknown fields, defaulting, admission);
//! - the files agree with each other (trust domain, cluster name, ports, socket and token paths,
//!   the probes' sockets, the volumes behind every configured path);
//! - `server.conf` and `agent.conf`, as the API server stores them, pass our `spire-server
//!   validate` and `spire-agent validate` with no setting reported as having no effect;
//! - the RBAC, applied for real, grants each account what its plugins use (`k8s_psat` on the
//!   server: TokenReviews, pods, nodes; the agent's `k8s` workload attestor: pods, nodes,
//!   nodes/proxy) and nothing broader, and the server's account can review an agent's token;
//! - our server runs on the shipped `server.conf` (paths and port moved into a temp dir, the API
//!   server reached through a kubeconfig with the `spire-server` account's token, so with exactly
//!   the RBAC above), the StatefulSet's probe command finds it healthy, and README.md's bundle step
//!   (`bundle show` into the `spire-bundle` ConfigMap) works.
//!
//! Needs the workspace's binaries built (`cargo build -p spire-server -p spire-agent`, or run with
//! `cargo test --workspace`). Skipped without the cluster peers or kubectl unless
//! `SPIRE_REQUIRE_PEERS=1`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use spire_testkit::kube::Cluster;
use spire_testkit::peers;
use spire_testkit::process::TestServer;

/// `deploy/k8s/base` (the server and agent manifests) in this checkout.
fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s/base").canonicalize().expect("deploy/k8s/base exists")
}

fn manifest(name: &str) -> String {
    deploy_dir().join(name).display().to_string()
}

/// `kubectl <args>`, which must succeed: its stdout, or a panic showing kubectl's stderr. `None`
/// when kubectl is missing (skipped).
fn kubectl(cluster: &Cluster, args: &[&str]) -> Option<String> {
    let out = cluster.kubectl(args)?;
    assert!(
        out.status.success(),
        "kubectl {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    Some(String::from_utf8(out.stdout).expect("kubectl prints UTF-8"))
}

/// `kubectl apply -f <file>` for real, one at a time in this process: the tests share one cluster,
/// and two client-side applies of the same new object race (both see it missing, one gets
/// AlreadyExists).
fn apply_for_real(cluster: &Cluster, file: &str) -> Option<String> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    kubectl(cluster, &["apply", "-f", file])
}

/// Creates (or updates) the `spire` namespace for real: the namespaced objects can only be
/// dry-run into a namespace that exists.
fn apply_namespace(cluster: &Cluster) -> Option<()> {
    apply_for_real(cluster, &manifest("namespace.yaml")).map(drop)
}

/// The `resources` of `kustomization.yaml`.
fn kustomization_resources() -> Vec<String> {
    let text = std::fs::read_to_string(deploy_dir().join("kustomization.yaml")).expect("read kustomization.yaml");
    let mut in_resources = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("resources:") {
            in_resources = true;
        } else if in_resources && let Some(item) = line.trim().strip_prefix("- ") {
            out.push(item.trim().to_owned());
        } else if !line.starts_with([' ', '#']) && !line.is_empty() {
            in_resources = false;
        }
    }
    out
}

#[test]
fn kustomization_lists_every_manifest() {
    let mut on_disk: Vec<String> = std::fs::read_dir(deploy_dir())
        .expect("list deploy/k8s")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    on_disk.sort();
    let mut listed = kustomization_resources();
    listed.sort();
    assert_eq!(listed, on_disk, "kustomization.yaml's resources and the manifests in deploy/k8s differ");
}

/// What the API server would store for every object of `kubectl apply -k deploy/k8s`.
struct Rendered {
    items: Vec<Value>,
}

impl Rendered {
    fn get(&self, kind: &str, name: &str) -> &Value {
        self.items
            .iter()
            .find(|i| i["kind"] == kind && i["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in deploy/k8s"))
    }

    fn config(&self, configmap: &str, key: &str) -> &str {
        self.get("ConfigMap", configmap)["data"][key]
            .as_str()
            .unwrap_or_else(|| panic!("ConfigMap {configmap} has no {key}"))
    }
}

/// `kubectl apply -k deploy/k8s --dry-run=server --validate=strict`, which must succeed.
fn dry_run_everything(cluster: &Cluster) -> Option<Rendered> {
    apply_namespace(cluster)?;
    let dir = deploy_dir().display().to_string();
    let json = kubectl(cluster, &["apply", "-k", &dir, "--dry-run=server", "--validate=strict", "-o", "json"])?;
    let value: Value = serde_json::from_str(&json).expect("kubectl -o json prints JSON");
    let items = match value["kind"].as_str() {
        Some("List") => value["items"].as_array().expect("items").clone(),
        _ => vec![value],
    };
    Some(Rendered { items })
}

#[tokio::test(flavor = "multi_thread")]
async fn manifests_pass_a_server_side_dry_run() {
    let Some(cluster) = Cluster::shared().await else { return };
    let Some(rendered) = dry_run_everything(cluster) else { return };
    let objects: BTreeSet<String> = rendered
        .items
        .iter()
        .map(|i| {
            let namespace = i["metadata"]["namespace"].as_str().unwrap_or("-");
            format!(
                "{} {namespace}/{}",
                i["kind"].as_str().unwrap_or("?"),
                i["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect();
    let expected: BTreeSet<String> = [
        "Namespace -/spire",
        "ServiceAccount spire/spire-server",
        "ClusterRole -/spire-server",
        "ClusterRoleBinding -/spire-server",
        "ConfigMap spire/spire-server",
        "Service spire/spire-server",
        "StatefulSet spire/spire-server",
        "ServiceAccount spire/spire-agent",
        "ClusterRole -/spire-agent",
        "ClusterRoleBinding -/spire-agent",
        "ConfigMap spire/spire-agent",
        "DaemonSet spire/spire-agent",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(objects, expected);
}

/// The quoted value of the first `key = "value"` line of an HCL text (our manifests write one
/// setting a line).
fn hcl_string<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.trim_start().strip_prefix('=')?.trim().strip_prefix('"'))
        .find_map(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no {key} = \"...\" in:\n{text}"))
}

/// The volume mounted at the directory of `path` in `container`, and the pod's definition of it.
fn volume_for<'a>(pod: &'a Value, container: &Value, path: &str) -> &'a Value {
    let dir = Path::new(path).parent().expect("a file path").to_str().expect("UTF-8");
    let mount = container["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["mountPath"] == dir)
        .unwrap_or_else(|| panic!("nothing is mounted at {dir} for {path}"));
    pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("volume {} is not defined", mount["name"]))
}

fn probe_socket(container: &Value, probe: &str) -> String {
    let command: Vec<&str> = container[probe]["exec"]["command"]
        .as_array()
        .unwrap_or_else(|| panic!("{probe} runs no command"))
        .iter()
        .map(|a| a.as_str().expect("string"))
        .collect();
    assert_eq!(command[1], "healthcheck", "{command:?}");
    let flag = command.iter().position(|a| *a == "-socketPath").expect("-socketPath");
    command[flag + 1].to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn manifests_agree_with_each_other() {
    let Some(cluster) = Cluster::shared().await else { return };
    let Some(rendered) = dry_run_everything(cluster) else { return };
    let server_conf = rendered.config("spire-server", "server.conf");
    let agent_conf = rendered.config("spire-agent", "agent.conf");
    let statefulset = rendered.get("StatefulSet", "spire-server");
    let server_pod = &statefulset["spec"]["template"]["spec"];
    let server = &server_pod["containers"][0];
    let daemonset = rendered.get("DaemonSet", "spire-agent");
    let agent_pod = &daemonset["spec"]["template"]["spec"];
    let agent = &agent_pod["containers"][0];
    let service = rendered.get("Service", "spire-server");

    assert_eq!(hcl_string(server_conf, "trust_domain"), hcl_string(agent_conf, "trust_domain"));

    // The agent attests to the cluster the server knows, as the account the server allows.
    let cluster_name = hcl_string(agent_conf, "cluster");
    assert!(server_conf.contains(&format!("\"{cluster_name}\" = {{")), "server.conf lacks cluster {cluster_name}");
    let agent_account = format!(
        "{}:{}",
        daemonset["metadata"]["namespace"].as_str().unwrap(),
        agent_pod["serviceAccountName"].as_str().unwrap()
    );
    assert!(server_conf.contains(&format!("service_account_allow_list = [\"{agent_account}\"]")), "{server_conf}");
    assert_eq!(server_pod["serviceAccountName"], "spire-server");

    // The agent reaches the server through the Service, on the port the server binds.
    let bind_port: u64 = hcl_string(server_conf, "bind_port").parse().expect("a port");
    assert_eq!(hcl_string(agent_conf, "server_address"), service["metadata"]["name"]);
    assert_eq!(hcl_string(agent_conf, "server_port").parse::<u64>().expect("a port"), bind_port);
    assert_eq!(service["spec"]["ports"][0]["port"], bind_port);
    let target = service["spec"]["ports"][0]["targetPort"].as_str().expect("a named target port");
    let port = server["ports"].as_array().unwrap().iter().find(|p| p["name"] == target).expect("the Service's port");
    assert_eq!(port["containerPort"], bind_port);
    assert_eq!(service["spec"]["selector"], statefulset["spec"]["selector"]["matchLabels"]);
    assert_eq!(agent_pod["dnsPolicy"], "ClusterFirstWithHostNet", "a hostNetwork pod resolves services only so");

    // Both containers read the ConfigMap's file.
    for (container, configmap, file) in [(server, "spire-server", "server.conf"), (agent, "spire-agent", "agent.conf")]
    {
        let args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        let path = args[args.iter().position(|a| *a == "-config").expect("-config") + 1];
        assert!(path.ends_with(&format!("/{file}")), "{path}");
        let pod = if configmap == "spire-server" { server_pod } else { agent_pod };
        assert_eq!(volume_for(pod, container, path)["configMap"]["name"], configmap);
    }

    // The server's state is on the persistent volume; its probes dial the socket it serves.
    let data_dir = hcl_string(server_conf, "data_dir");
    for key in ["connection_string", "keys_path"] {
        assert!(Path::new(hcl_string(server_conf, key)).starts_with(data_dir), "{key} is outside {data_dir}");
    }
    let claim = statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"].as_str().expect("a claim");
    let data_mount =
        server["volumeMounts"].as_array().unwrap().iter().find(|m| m["name"] == claim).expect("claim mount");
    assert_eq!(data_mount["mountPath"], data_dir);
    let server_socket = hcl_string(server_conf, "socket_path");
    assert_eq!(probe_socket(server, "livenessProbe"), server_socket);
    assert_eq!(probe_socket(server, "readinessProbe"), server_socket);
    assert!(volume_for(server_pod, server, server_socket).get("emptyDir").is_some());

    // The agent: its socket on the node, the bundle from the spire-bundle ConfigMap, and the
    // projected token where k8s_psat's token_path default expects it, for the server's default
    // audience.
    let agent_socket = hcl_string(agent_conf, "socket_path");
    assert_eq!(probe_socket(agent, "livenessProbe"), agent_socket);
    assert_eq!(probe_socket(agent, "readinessProbe"), agent_socket);
    assert_eq!(volume_for(agent_pod, agent, agent_socket)["hostPath"]["path"], "/run/spire/sockets");
    let bundle_path = hcl_string(agent_conf, "trust_bundle_path");
    assert_eq!(volume_for(agent_pod, agent, bundle_path)["configMap"]["name"], "spire-bundle");
    assert_eq!(Path::new(bundle_path).file_name().unwrap(), "bundle.crt", "the key README.md's command writes");
    let token_path = "/var/run/secrets/tokens/spire-agent";
    let token = &volume_for(agent_pod, agent, token_path)["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(token["path"], "spire-agent");
    assert_eq!(token["audience"], "spire-server");
    assert!(!agent_conf.contains("token_path"), "k8s_psat reads its default token_path");
    let env = agent["env"].as_array().expect("env");
    let node_name = env.iter().find(|e| e["name"] == "MY_NODE_NAME").expect("MY_NODE_NAME for the k8s attestor");
    assert_eq!(node_name["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
    assert_eq!(agent_pod["hostPID"], true, "workload attestation reads the callers' /proc entries");
}

/// `<binary> validate -config <file>` for `text`: succeeds, says the file is valid, and reports no
/// setting as having no effect.
fn assert_valid(binary: &Path, text: &str, file: &str, valid: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(file);
    std::fs::write(&path, text).expect("write the config");
    let out = Command::new(binary).arg("validate").arg("-config").arg(&path).output().expect("run validate");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{} validate refused the {file} of deploy/k8s:\n{stderr}{stdout}", binary.display());
    assert_eq!(stdout, valid);
    assert_eq!(stderr, "", "{file} of deploy/k8s has settings spire-rs accepts without acting on them");
}

#[tokio::test(flavor = "multi_thread")]
async fn configs_pass_our_validate() {
    let Some(cluster) = Cluster::shared().await else { return };
    let Some(rendered) = dry_run_everything(cluster) else { return };
    assert_valid(
        &peers::workspace_binary("spire-server"),
        rendered.config("spire-server", "server.conf"),
        "server.conf",
        "SPIRE server configuration file is valid.\n",
    );
    assert_valid(
        &peers::workspace_binary("spire-agent"),
        rendered.config("spire-agent", "agent.conf"),
        "agent.conf",
        "SPIRE agent configuration file is valid.\n",
    );
}

/// `kubectl auth can-i <verb> <resource> [--subresource=..] --as=<account>`: yes or no. RBAC
/// follows new bindings within moments, so a "no" that should be a "yes" is asked again.
fn can_i(cluster: &Cluster, account: &str, verb: &str, resource: &str, expect: bool) -> Option<()> {
    let (resource, subresource) = resource.split_once('/').map_or((resource, None), |(r, s)| (r, Some(s)));
    let user = format!("--as=system:serviceaccount:spire:{account}");
    let sub = subresource.map(|s| format!("--subresource={s}"));
    let mut args = vec!["auth", "can-i", verb, resource, user.as_str()];
    args.extend(sub.as_deref());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = cluster.kubectl(&args)?;
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(answer == "yes" || answer == "no", "{args:?}: {answer} {}", String::from_utf8_lossy(&out.stderr));
        if (answer == "yes") == expect {
            return Some(());
        }
        assert!(expect, "{account} may {verb} {resource} {subresource:?}, which it does not need");
        assert!(Instant::now() < deadline, "{account} cannot {verb} {resource} {subresource:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rbac_grants_what_the_plugins_use() {
    let Some(cluster) = Cluster::shared().await else { return };
    if apply_namespace(cluster).is_none() {
        return;
    }
    for file in ["server-account.yaml", "agent-account.yaml"] {
        apply_for_real(cluster, &manifest(file)).expect("kubectl is there");
    }
    // k8s_psat on the server: TokenReview, then the agent's pod and its node.
    for (verb, resource) in [("create", "tokenreviews.authentication.k8s.io"), ("get", "pods"), ("get", "nodes")] {
        can_i(cluster, "spire-server", verb, resource, true);
    }
    // The agent's k8s workload attestor: the kubelet's /pods (nodes/proxy), pods and nodes.
    for (verb, resource) in [("get", "pods"), ("get", "nodes"), ("get", "nodes/proxy")] {
        can_i(cluster, "spire-agent", verb, resource, true);
    }
    // Nothing broader.
    for account in ["spire-server", "spire-agent"] {
        for (verb, resource) in [("list", "pods"), ("get", "secrets"), ("create", "pods"), ("patch", "configmaps")] {
            can_i(cluster, account, verb, resource, false);
        }
    }
    can_i(cluster, "spire-agent", "create", "tokenreviews.authentication.k8s.io", false);

    // For real: the server's account reviews a token minted as the agent's projected volume asks
    // for it (audience spire-server), as k8s_psat does.
    let agent_token =
        kubectl(cluster, &["create", "token", "spire-agent", "-n", "spire", "--audience", "spire-server"])
            .expect("kubectl");
    let server_token = kubectl(cluster, &["create", "token", "spire-server", "-n", "spire"]).expect("kubectl");
    let dir = tempfile::tempdir().expect("tempdir");
    let review = dir.path().join("review.json");
    let body = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": agent_token.trim(), "audiences": ["spire-server"]},
    });
    std::fs::write(&review, body.to_string()).expect("write the review");
    let as_server = format!("--token={}", server_token.trim());
    // (kubectl's client-side validation would list CRDs, which the account may not.)
    let create = ["create", "--validate=false", "-o", "json", "-f", review.to_str().expect("UTF-8")];
    let out = kubectl(cluster, &[&[as_server.as_str()][..], &create].concat()).expect("kubectl");
    let status: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(status["status"]["authenticated"], true, "{status}");
    assert_eq!(status["status"]["user"]["username"], "system:serviceaccount:spire:spire-agent", "{status}");
    assert_eq!(status["status"]["audiences"], serde_json::json!(["spire-server"]), "{status}");
}

/// The exec command of `probe` in `container`, with our binary and `socket` for the pod's.
fn run_probe(container: &Value, probe: &str, binary: &Path, socket: &Path) -> std::process::Output {
    let command: Vec<&str> = container[probe]["exec"]["command"]
        .as_array()
        .expect("an exec probe")
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let pod_socket = probe_socket(container, probe);
    let args = command[1..].iter().map(|a| if *a == pod_socket { socket.as_os_str() } else { a.as_ref() });
    Command::new(binary).args(args).output().expect("run the probe")
}

#[tokio::test(flavor = "multi_thread")]
async fn server_runs_on_the_shipped_config() {
    let Some(cluster) = Cluster::shared().await else { return };
    let Some(rendered) = dry_run_everything(cluster) else { return };
    apply_for_real(cluster, &manifest("server-account.yaml")).expect("kubectl");
    let token = kubectl(cluster, &["create", "token", "spire-server", "-n", "spire"]).expect("kubectl");
    let kube_dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = kube_dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig, token.trim());

    // The pod's paths and port moved into the test's directory; in the pod the in-cluster
    // configuration takes the kubeconfig's place.
    let shipped = rendered.config("spire-server", "server.conf").to_owned();
    let socket = hcl_string(&shipped, "socket_path").to_owned();
    let data_dir = hcl_string(&shipped, "data_dir").to_owned();
    let allow_list = "service_account_allow_list = [\"spire:spire-agent\"]";
    assert!(shipped.contains(allow_list), "{shipped}");
    let binary = peers::workspace_binary("spire-server");
    let mut server = TestServer::start_with_config(&binary, |dir, port| {
        shipped
            .replace(&socket, &dir.join("api.sock").display().to_string())
            .replace(&data_dir, &dir.join("data").display().to_string())
            .replace("bind_address = \"0.0.0.0\"", "bind_address = \"127.0.0.1\"")
            .replace("bind_port = \"8081\"", &format!("bind_port = \"{port}\""))
            .replace(allow_list, &format!("{allow_list}\n kube_config_file = \"{}\"", kubeconfig.display()))
    })
    .await;

    let container = &rendered.get("StatefulSet", "spire-server")["spec"]["template"]["spec"]["containers"][0];
    for probe in ["livenessProbe", "readinessProbe"] {
        let out = run_probe(container, probe, &binary, &server.socket);
        assert!(out.status.success(), "{probe}: {}\n{}", String::from_utf8_lossy(&out.stderr), server.log());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "Server is healthy.\n");
    }

    // README.md step 3: the bundle into the spire-bundle ConfigMap, as `$(...)` leaves it.
    let out = Command::new(&binary).args(["bundle", "show", "-socketPath"]).arg(&server.socket).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pem = String::from_utf8(out.stdout).expect("PEM").trim_end_matches('\n').to_owned();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----") && pem.ends_with("-----END CERTIFICATE-----"), "{pem}");
    let literal = format!("--from-literal=bundle.crt={pem}");
    let yaml = kubectl(
        cluster,
        &["-n", "spire", "create", "configmap", "spire-bundle", "--dry-run=client", "-o", "yaml", &literal],
    )
    .expect("kubectl");
    let file = kube_dir.path().join("spire-bundle.yaml");
    std::fs::write(&file, yaml).expect("write the ConfigMap");
    apply_for_real(cluster, file.to_str().expect("UTF-8")).expect("kubectl");
    let stored =
        kubectl(cluster, &["-n", "spire", "get", "configmap", "spire-bundle", "-o", "jsonpath={.data.bundle\\.crt}"])
            .expect("kubectl");
    assert_eq!(stored, pem);
    assert_eq!(server.try_wait(), None, "the server stopped:\n{}", server.log());
}
