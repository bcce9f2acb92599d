//! The test cluster itself: a real API server that issues and reviews projected tokens, a stand-in
//! kubelet that lists its node's pods, and a Docker engine whose containers have real cgroups.

use spire_testkit::docker::{Container, Dockerd};
use spire_testkit::kube::{Cluster, PodSpec};
use spire_testkit::kubelet::Kubelet;

#[tokio::test(flavor = "multi_thread")]
async fn cluster_kubelet_and_docker_work() {
    let Some(cluster) = Cluster::shared().await else { return };
    let Some(docker) = Dockerd::shared().await else { return };
    cluster.create_node("node-a", &[("zone", "a")]).await;
    let pod = cluster
        .create_pod(PodSpec {
            namespace: "default",
            name: "web",
            service_account: "default",
            node: "node-a",
            labels: &[("app", "web")],
            containers: &[("main", "spire-rs-test:busybox")],
        })
        .await;
    let image = docker.import_image("spire-rs-test:busybox", &[]);
    let uid = pod.metadata.uid.clone().unwrap();
    let parent = format!("/kubepods/besteffort/pod{uid}");
    let id = docker.run_sleeping(&Container {
        image: "spire-rs-test:busybox",
        name: "smoke",
        volumes: &[],
        cgroup_parent: Some(&parent),
        lifetime: std::time::Duration::from_secs(60),
    });
    let out = docker.exec(&id, &["cat", "/proc/self/cgroup"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{parent}/{id}")), "{out:?}");
    cluster.set_pod_running(&pod, &[("main", &format!("docker://{id}"), &image)]).await;
    let token = cluster.pod_token("default", &pod, &["spire-server"], 600).await;
    assert_eq!(token.split('.').count(), 3);
    let kubelet = Kubelet::start(cluster, "node-a").await;
    let out = std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(cluster.ca_path())
        .args(["-H", &format!("Authorization: Bearer {}", cluster.admin_token())])
        .arg(format!("https://127.0.0.1:{}/pods", kubelet.port))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("\"kind\":\"PodList\"") && body.contains(&id), "{body}");
    docker.remove(&id);
    let kubectl = cluster.kubectl(&["get", "pods", "-A"]).unwrap();
    assert!(String::from_utf8_lossy(&kubectl.stdout).contains("web"), "{kubectl:?}");
}
